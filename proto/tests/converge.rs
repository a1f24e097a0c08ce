// SPDX-License-Identifier: GPL-2.0
//! The convergence policy, fed round histories like the ones measured in
//! guests: idle, a dirtier the link keeps up with, one that rewrites its
//! working set faster than the link sends it, and the caps.

use selfmig_proto::converge::{Convergence, Decision, End, Round, MAX_ROUNDS, STALLED_ROUNDS};

const MS: u64 = 1_000_000;
/// A 1 GiB guest.
const RAM_PAGES: u64 = 262_144;
/// The source's staging buffer.
const STAGING: u64 = 16_384;

/// A round that checked and sent `pages` pages, `ns` long, `us_per_page`
/// microseconds of work per page.
fn round(pages: u64, ns: u64, us_per_page: u64) -> Round {
    Round {
        pages,
        checked: pages,
        bytes: pages * 1024,
        ns,
        work_ns: pages * us_per_page * 1000,
        dirtiers: 1,
    }
}

/// [`round`] with no process left to throttle: what the kernel or many
/// light writers dirty.
fn floor(pages: u64, ns: u64, us_per_page: u64) -> Round {
    Round {
        dirtiers: 0,
        ..round(pages, ns, us_per_page)
    }
}

/// Feeds `p` one [`floor`] round of `ns` and `us_per_page` per
/// `(round, pages)`; the decisions.
fn floor_rounds(
    p: &mut Convergence,
    rounds: &[(u32, u64)],
    ns: u64,
    us_per_page: u64,
) -> Vec<Decision> {
    rounds
        .iter()
        .map(|&(k, pages)| p.after_round(k, floor(pages, ns, us_per_page), 120 << 20))
        .collect()
}

/// The policy with auto-converge `on`, after a round 0 of a 1 GiB guest:
/// 3 s, mostly zero pages at 2 µs each.
fn after_round0(on: bool) -> Convergence {
    let mut p = Convergence::new(50, on, RAM_PAGES, STAGING);
    assert_eq!(
        p.after_round(0, round(200_000, 3_000 * MS, 2), 100 << 20),
        Decision::Continue
    );
    p
}

#[test]
fn idle_guest_converges_once_the_rounds_are_short() {
    let mut p = after_round0(true);
    // Round 1 finds what the long round 0 let be written: 3,000 pages at
    // 20 µs is 60 ms, above the limit, although round 1 is much shorter.
    assert_eq!(
        p.after_round(1, round(3_000, 120 * MS, 20), 110 << 20),
        Decision::Continue
    );
    assert_eq!(p.pending, 3_000);
    assert_eq!(p.expected_us, 60_000);
    assert_eq!(p.page_rate, 50_000);
    // Round 2 finds 200 pages: 4 ms.
    assert_eq!(p.ended, None);
    assert_eq!(
        p.after_round(2, round(200, 40 * MS, 20), 111 << 20),
        Decision::Checkpoint
    );
    assert_eq!(p.expected_us, 4_000);
    assert_eq!(p.ended, Some(End::Fits));
}

#[test]
fn round_zero_pages_do_not_set_the_cost_of_a_page() {
    let mut p = after_round0(true);
    // Round 0's 2 µs pages would put 2,000 dirty pages at 4 ms; at the
    // 30 µs a dirtied page costs, they are 60 ms.
    p.after_round(1, round(2_000, 100 * MS, 30), 110 << 20);
    assert_eq!(p.expected_us, 60_000);
}

#[test]
fn the_cost_of_a_page_follows_the_recent_rounds() {
    let mut p = after_round0(true);
    p.after_round(1, round(8_000, 400 * MS, 40), 110 << 20);
    assert_eq!(p.page_rate, 25_000);
    // The dirtier is throttled, the sender gets the CPU: 10 µs a page.
    for (k, pages) in [(2, 4_000), (3, 2_000), (4, 1_000)] {
        p.after_round(k, round(pages, 200 * MS, 10), 120 << 20);
    }
    // Each round weighs four times the one before: within 20% of the new
    // rate after three rounds.
    assert!(p.page_rate > 80_000, "page rate {}", p.page_rate);
}

#[test]
fn a_dirtier_rewriting_its_working_set_never_looks_convergent() {
    // 64 MiB rewritten in every round, whatever the rounds' lengths (the
    // history of the CI run where the old estimate let it through: rounds
    // got shorter, and the pages they found were scaled down with them).
    let mut p = after_round0(false);
    let mut decisions = Vec::new();
    for k in 1..=10 {
        let ns = if k % 2 == 0 { 200 * MS } else { 1_600 * MS };
        let d = p.after_round(k, round(16_384, ns, 20), (100 + 64 * k as u64) << 20);
        assert!(p.pending >= 16_384, "round {k}: pending {}", p.pending);
        assert!(p.expected_us >= 300_000, "round {k}: {} us", p.expected_us);
        decisions.push(d);
        if d == Decision::GiveUp {
            break;
        }
    }
    assert_eq!(decisions.last(), Some(&Decision::GiveUp));
    assert!(!decisions.contains(&Decision::Checkpoint));
    // Round 1 is not compared with round 0; then three stalled rounds.
    assert_eq!(decisions.len(), 1 + STALLED_ROUNDS as usize);
}

#[test]
fn with_auto_converge_a_stalled_round_throttles() {
    let mut p = after_round0(true);
    p.after_round(1, round(16_384, 600 * MS, 30), 170 << 20);
    assert_eq!(
        p.after_round(2, round(16_384, 600 * MS, 30), 240 << 20),
        Decision::Throttle
    );
    // Throttled: the dirtier falls behind, the rounds shrink, and it
    // converges.
    let mut d = Decision::Throttle;
    let mut pages = 16_384;
    for k in 3..MAX_ROUNDS {
        pages /= 4;
        d = p.after_round(k, round(pages, 40 * MS + pages * 20_000, 20), 300 << 20);
        if d == Decision::Checkpoint {
            break;
        }
    }
    assert_eq!(d, Decision::Checkpoint);
    assert!(p.expected_us <= 50_000);
}

#[test]
fn a_round_that_finds_nearly_as_many_pages_makes_no_progress() {
    let mut p = after_round0(true);
    p.after_round(1, round(10_000, 500 * MS, 25), 140 << 20);
    assert_eq!(
        p.after_round(2, round(9_000, 400 * MS, 25), 170 << 20),
        Decision::Throttle
    );
    // 9,000 pages written during round 1's 500 ms: far below the 40,000
    // pages/s the sender handles; the stall alone decided.
    assert_eq!(p.dirty_rate, 18_000);
    assert_eq!(p.page_rate, 40_000);
}

#[test]
fn a_dirty_rate_close_to_the_page_rate_is_outrunning() {
    let mut p = after_round0(false);
    // 12 µs a page: 83,333 pages/s.
    p.after_round(1, round(10_000, 500 * MS, 12), 140 << 20);
    assert_eq!(
        p.after_round(2, round(6_000, 72 * MS, 12), 170 << 20),
        Decision::Continue
    );
    // 5,000 pages written in 72 ms: 69,444 pages/s, above 80% of the page
    // rate, though fewer pages than round 2.
    assert_eq!(
        p.after_round(3, round(5_000, 60 * MS, 12), 190 << 20),
        Decision::Continue
    );
    assert_eq!(p.dirty_rate, 69_444);
    assert_eq!(p.expected_us, 60_000);
    // Twice more and it gives up (throttling is off).
    assert_eq!(
        p.after_round(4, round(4_500, 54 * MS, 12), 200 << 20),
        Decision::Continue
    );
    assert_eq!(
        p.after_round(5, round(4_500, 54 * MS, 12), 210 << 20),
        Decision::GiveUp
    );
}

#[test]
fn a_floor_nothing_can_throttle_ends_pre_copy() {
    for on in [true, false] {
        let mut p = after_round0(on);
        let floor = |pages| floor(pages, 70 * MS, 150);
        p.after_round(1, floor(700), 110 << 20);
        // 350 pages a round at 150 µs: 52 ms, and nobody to throttle.
        let rounds = [(2, 350), (3, 340), (4, 345), (5, 342)];
        let decisions = floor_rounds(&mut p, &rounds, 70 * MS, 150);
        // Round 2 halved the set; then three rounds without progress.
        assert_eq!(
            decisions,
            [
                Decision::Continue,
                Decision::Continue,
                Decision::Continue,
                Decision::Floor
            ],
            "auto_converge={on}"
        );
        assert_eq!(p.ended, Some(End::Floor));
    }
}

#[test]
fn the_fixed_part_counts_against_the_limit() {
    let mut p = after_round0(true);
    // Rehearsals of both sides took 35 ms together.
    p.set_fixed_us(35_000);
    assert_eq!(p.fixed_us(), 35_000);
    p.after_round(1, round(3_000, 120 * MS, 20), 110 << 20);
    // 1,000 pages at 20 µs are 20 ms: they alone fit, not with the 35.
    assert_ne!(
        p.after_round(2, round(1_000, 100 * MS, 20), 111 << 20),
        Decision::Checkpoint
    );
    assert_eq!(p.expected_us, 55_000);
    assert_eq!(p.ended, None);
    // 500 pages: 10 + 35 ms.
    assert_eq!(
        p.after_round(3, round(500, 60 * MS, 20), 112 << 20),
        Decision::Checkpoint
    );
    assert!(
        (45_000..45_100).contains(&p.expected_us),
        "{}",
        p.expected_us
    );
    assert_eq!(p.ended, Some(End::Fits));
}

#[test]
fn a_fixed_part_over_the_limit_throttles_to_the_floor() {
    let mut p = after_round0(true);
    p.set_fixed_us(60_000);
    p.after_round(1, round(2_000, 100 * MS, 20), 110 << 20);
    // Nothing fits; the dirtier's rounds stall: throttle it.
    assert_eq!(
        p.after_round(2, round(1_900, 100 * MS, 20), 111 << 20),
        Decision::Throttle
    );
    // Throttled as hard as it goes, what is left is a floor.
    let floor = |pages| floor(pages, 30 * MS, 20);
    let mut d = Decision::Continue;
    for (k, pages) in [(3, 300), (4, 280), (5, 290), (6, 285)] {
        d = p.after_round(k, floor(pages), 112 << 20);
    }
    assert_eq!(d, Decision::Floor);
    assert_eq!(p.ended, Some(End::Floor));
}

#[test]
fn progress_is_a_new_low() {
    let mut p = after_round0(false);
    p.set_fixed_us(30_000);
    let floor = |pages| floor(pages, 70 * MS, 100);
    p.after_round(1, floor(700), 110 << 20);
    // Up and down around 400 pages (68-82 ms with the fixed part): each
    // down round checks fewer than the round before, none 10% fewer than
    // the first 400.
    let rounds = [(2, 400), (3, 500), (4, 380), (5, 520), (6, 390)];
    let decisions = floor_rounds(&mut p, &rounds, 70 * MS, 100);
    assert_eq!(
        decisions,
        [
            Decision::Continue,
            Decision::Continue,
            Decision::Continue,
            Decision::Floor,
            Decision::Floor
        ]
    );
}

#[test]
fn writes_a_live_round_sent_as_they_were_still_count() {
    // From a bench run: round 1 sent the dirtier's whole 256 MiB in 2.5 s
    // while it wrote about 30,000 of its pages, mostly just before the walk
    // read them. Round 2 checked those 30,000 and found only 1,682 changed;
    // counted in pages sent, the estimate let the guest stop, and the
    // checkpoint then staged 4,116 of the dirtier's pages.
    let mut p = after_round0(true);
    p.after_round(1, round(65_536, 2_500 * MS, 20), 200 << 20);
    let absorbed = Round {
        pages: 1_682,
        checked: 30_000,
        bytes: 1_682 * 1024,
        ns: 317 * MS,
        work_ns: 30_000 * 5_000 + 1_682 * 20_000,
        dirtiers: 1,
    };
    assert_ne!(p.after_round(2, absorbed, 210 << 20), Decision::Checkpoint);
    assert_eq!(p.pending, 30_000);
    assert!(p.expected_us > 100_000, "{} us", p.expected_us);
}

/// The policy with auto-converge on and a 520 ms settle time, after a
/// dirtier stalled rounds 1 and 2 and was throttled at round 2.
fn throttled_at_round2() -> Convergence {
    let mut p = Convergence::new(50, true, RAM_PAGES, STAGING).with_settle(520 * MS);
    p.after_round(0, round(200_000, 3_000 * MS, 2), 100 << 20);
    p.after_round(1, round(16_384, 600 * MS, 30), 170 << 20);
    assert_eq!(
        p.after_round(2, round(16_384, 600 * MS, 30), 240 << 20),
        Decision::Throttle
    );
    p
}

#[test]
fn no_checkpoint_while_a_throttled_task_settles() {
    // The bench's outlier: throttled two rounds before, the estimate fit,
    // and the checkpoint caught a burst of 5,000 pages.
    let mut p = throttled_at_round2();
    // Fits, 300 ms after the throttling: another round.
    assert_eq!(
        p.after_round(3, round(700, 300 * MS, 30), 250 << 20),
        Decision::Continue
    );
    assert!(p.deferred);
    assert_eq!(p.ended, None);
    assert_eq!(p.settle_left_ns(), 220 * MS);
    // The caller waits 220 ms; the next round's pages were written during
    // 520 ms.
    p.waited(220 * MS);
    assert_eq!(p.settle_left_ns(), 0);
    // Then done.
    assert_eq!(
        p.after_round(4, round(600, 100 * MS, 30), 260 << 20),
        Decision::Checkpoint
    );
    assert!(!p.deferred);
    assert_eq!(p.dirty_rate, 600 * 1000 / 520);
    assert_eq!(p.ended, Some(End::Fits));
    // The caps do not wait.
    p.throttled();
    assert_eq!(
        p.after_round(MAX_ROUNDS, round(600, 30 * MS, 30), 270 << 20),
        Decision::Checkpoint
    );
}

#[test]
fn no_tighter_throttle_before_the_last_one_settled() {
    // The bench's dirty50 runs: throttled at round 6, again at round 7 (the
    // round still saw the writes from before), and at round 11 (the burst
    // that follows a change): three bursts and waits where one would do.
    let mut p = throttled_at_round2();
    // 200 ms later, as stalled: the throttle has not bitten yet.
    assert_eq!(
        p.after_round(3, round(16_384, 200 * MS, 30), 250 << 20),
        Decision::Continue
    );
    assert!(!p.deferred);
    assert!(p.held_off);
    // 400 ms: the burst; still within the settle time.
    assert_eq!(
        p.after_round(4, round(16_384, 200 * MS, 30), 260 << 20),
        Decision::Continue
    );
    // Past it and still stalled: throttled harder.
    assert_eq!(
        p.after_round(5, round(16_384, 200 * MS, 30), 270 << 20),
        Decision::Throttle
    );
    assert!(!p.held_off);
    // Without auto-converge nothing changes: three stalled rounds give up.
    let mut q = Convergence::new(50, false, RAM_PAGES, STAGING).with_settle(520 * MS);
    q.after_round(0, round(200_000, 3_000 * MS, 2), 100 << 20);
    q.after_round(1, round(16_384, 600 * MS, 30), 170 << 20);
    let d: Vec<_> = (2..5)
        .map(|k| q.after_round(k, round(16_384, 600 * MS, 30), 170 << 20))
        .collect();
    assert_eq!(d.last(), Some(&Decision::GiveUp));
}

#[test]
fn a_longer_round_scales_the_pending_pages_up() {
    let mut p = after_round0(true);
    p.after_round(1, round(1_000, 100 * MS, 20), 110 << 20);
    p.after_round(2, round(1_000, 300 * MS, 20), 111 << 20);
    assert_eq!(p.pending, 3_000);
}

#[test]
fn cheap_pages_still_have_to_fit_the_staging_buffer() {
    let mut p = after_round0(true);
    p.after_round(1, round(20_000, 400 * MS, 1), 110 << 20);
    // 10,000 pages of 1 µs: 10 ms, but more than half the buffer.
    assert_ne!(
        p.after_round(2, round(10_000, 400 * MS, 1), 112 << 20),
        Decision::Checkpoint
    );
    assert_eq!(p.expected_us, 10_000);
}

#[test]
fn a_round_that_found_nothing_checkpoints() {
    let mut p = after_round0(false);
    assert_eq!(
        p.after_round(1, round(0, 30 * MS, 0), 100 << 20),
        Decision::Checkpoint
    );
    assert_eq!(p.ended, Some(End::Clean));
}

#[test]
fn the_caps_end_pre_copy() {
    let mut p = after_round0(true);
    assert_eq!(
        p.after_round(MAX_ROUNDS, round(16_384, 600 * MS, 30), 200 << 20),
        Decision::Checkpoint
    );
    assert_eq!(p.ended, Some(End::RoundCap));
    let mut p = after_round0(true);
    assert_eq!(
        p.after_round(1, round(16_384, 600 * MS, 30), RAM_PAGES * 4096 * 4),
        Decision::Checkpoint
    );
    assert_eq!(p.ended, Some(End::ByteCap));
    assert_eq!(End::ByteCap.as_str(), "byte_cap");
}

#[test]
fn degenerate_measurements_do_not_panic() {
    let huge = Round {
        pages: u64::MAX,
        checked: u64::MAX,
        bytes: u64::MAX,
        ns: 0,
        work_ns: u64::MAX,
        dirtiers: u32::MAX,
    };
    let mut p = Convergence::new(0, false, u64::MAX, 0);
    p.after_round(0, Round::default(), 0);
    p.after_round(1, huge, u64::MAX);
    p.after_round(
        2,
        Round {
            ns: u64::MAX,
            ..huge
        },
        u64::MAX,
    );
    p.after_round(3, Round { work_ns: 0, ..huge }, u64::MAX);
    p.after_round(4, Round::default(), 0);
    assert!(p.expected_us <= u64::MAX / 1000);
}
