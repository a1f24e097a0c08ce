// SPDX-License-Identifier: GPL-2.0

//! When to stop pre-copy: the convergence policy.
//!
//! Pure arithmetic on what each round measured, so that the source module
//! runs it and the host tests can feed it any history.
//!
//! Everything is counted in *checked* pages: the pages a round reads and
//! compares with what it sent last. They are the pages written since the
//! round before (plus frames never sent yet), whether or not they turn out
//! changed. Counting the pages a round *sent* instead misleads: a live
//! round sends the pages written before its walk reaches them as they are
//! then, so a workload writing the pages in the order the walk reads them
//! shows few changed pages in the next round, although every one of its
//! writes will be pending at a checkpoint, which stops the guest first.
//!
//! After each round the policy updates:
//!
//! * the **cost of a page**: the time the rounds spent on the pages
//!   themselves (comparing, packing, sending; not the harvest, not the
//!   walk over RAM) over the pages they checked. Rounds after the first
//!   full copy only, each round weighing four times the one before: round
//!   0's zero and never-written pages are cheaper than the pages a
//!   workload dirties, and a throttled dirtier leaves the sender more of
//!   the CPU. The checkpoint spends about this much per page it checks.
//!   Its inverse is the *page rate* in `stats`;
//! * the **bandwidth** in bytes (shown in `stats`);
//! * the **dirty rate**: the pages round *k* checked, over the duration of
//!   round *k-1*, during which they were written;
//! * the **pending pages**: how many the checkpoint would check if the
//!   guest stopped now, i.e. written during round *k*. Writes are not
//!   linear in time: a workload that cycles through a buffer dirties its
//!   whole working set in any interval long enough. The number of pages
//!   written in an interval grows with the interval, and no faster than
//!   the interval itself. So when round *k* was shorter than round *k-1*,
//!   at most what round *k* checked is pending; when it was longer, at
//!   most that scaled by the ratio of the durations. The policy takes that
//!   upper bound.
//!
//! The *expected downtime* is the pending pages at the cost of a page,
//! plus the *fixed part*: what stopping and resuming the guest costs
//! whatever the pages, as measured by the rehearsals of both sides (the
//! source's checkpoint without the copy, the target's freeze and restore of
//! its devices; see [`Convergence::set_fixed_us`]). Without it, a guest
//! whose pending pages alone fit checkpointed with a thousand of them and
//! stayed stopped half as long again as the limit (the bench's 50 MB/s
//! dirtier under an emulator, where the fixed part is most of the limit).
//! Pre-copy stops when the expected downtime fits `max_downtime_ms` and the
//! pages fit comfortably (half) in the staging buffer the checkpoint copies
//! them into, or when a round found nothing changed; but not within the
//! settle time after a throttling ([`Convergence::with_settle`]).
//!
//! A round is *not converging* when the dirty rate is at least 80% of the
//! page rate, or when it checked at least 90% as many pages as the fewest
//! any round since the first checked: a guest whose pending pages go up and
//! down around a floor makes no progress, although some rounds check fewer
//! pages than the one before. Then,
//! with `auto_converge` on, the caller throttles the heaviest dirtiers (but
//! not again within the settle time of the last throttling: the rounds in
//! between still see the writes from before it took effect, and the burst
//! it causes); with it off, pre-copy gives up after three rounds without
//! progress in a row.
//! If no process dirtied enough to be throttled (or none can be throttled
//! harder), three such rounds in a row
//! end pre-copy with a checkpoint ([`Decision::Floor`]): what is left is
//! written by the kernel itself or by many light writers, and more rounds
//! would only repeat it. Whatever
//! happens, pre-copy ends after [`MAX_ROUNDS`] rounds or once it sent four
//! times the guest's RAM; the checkpoint is attempted then, and fails
//! cleanly if the rest does not fit its staging buffer.

use super::wire::PAGE_SIZE;

/// Most pre-copy rounds.
pub const MAX_ROUNDS: u32 = 30;

/// Rounds in a row without progress after which pre-copy gives up when
/// throttling is off.
pub const STALLED_ROUNDS: u32 = 3;

/// What to do after a round.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Decision {
    /// Another round.
    Continue,
    /// Another round, with the dirtiers throttled harder.
    Throttle,
    /// Stop the guest and copy the rest.
    Checkpoint,
    /// Give up: the workload outruns the link and throttling is off.
    GiveUp,
    /// Stop the guest although the rest does not fit `max_downtime_ms`:
    /// the rounds stopped shrinking and no process dirties enough to be
    /// throttled (the kernel's own writes, or many light writers, set a
    /// floor that more rounds do not lower).
    Floor,
}

/// Why pre-copy ended with a checkpoint.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum End {
    /// The pending pages fit `max_downtime_ms` and the staging buffer.
    Fits,
    /// A round found nothing changed.
    Clean,
    /// [`MAX_ROUNDS`] rounds ran.
    RoundCap,
    /// Four times the guest's RAM was sent.
    ByteCap,
    /// The rounds stopped shrinking with nothing to throttle
    /// ([`Decision::Floor`]).
    Floor,
}

impl End {
    /// The name `stats` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Fits => "fits",
            End::Clean => "clean",
            End::RoundCap => "round_cap",
            End::ByteCap => "byte_cap",
            End::Floor => "floor",
        }
    }
}

/// What one pre-copy round measured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Pages sent (the pages the round found changed).
    pub pages: u64,
    /// Pages the round read and compared with what it sent last: the
    /// pages written since the round before (changed or not, sent by now
    /// or not), and frames never sent yet.
    pub checked: u64,
    /// Bytes put on the wire.
    pub bytes: u64,
    /// The round's duration, harvest and walk included, in nanoseconds.
    pub ns: u64,
    /// The part of `ns` spent on the pages themselves: comparing, packing
    /// and sending them.
    pub work_ns: u64,
    /// Processes that dirtied enough during the round to be throttled,
    /// and can be throttled harder.
    pub dirtiers: u32,
}

/// The policy's inputs and what it measured.
#[derive(Debug)]
pub struct Convergence {
    max_downtime_ns: u64,
    auto_converge: bool,
    /// Bytes after which pre-copy stops (four times the RAM).
    max_bytes: u64,
    /// Most pages left for the checkpoint.
    max_pending: u64,
    /// Bytes and nanoseconds over all rounds (for the bandwidth).
    bytes: u64,
    ns: u64,
    /// Pages and time spent on them, each round weighing four times the
    /// one before (rounds after the first only, once there is one).
    work_pages: u64,
    work_ns: u64,
    /// The previous round.
    last: Round,
    /// Rounds in a row without progress.
    stalled: u32,
    /// The fewest pages a round after the first checked.
    fewest: u64,
    /// The fixed part of the downtime, nanoseconds.
    fixed_ns: u64,
    /// Whether the last round's pending pages fit the downtime limit and
    /// the staging buffer.
    fits: bool,
    /// Bandwidth, bytes per second.
    pub bandwidth: u64,
    /// Pages the sender handles per second of work.
    pub page_rate: u64,
    /// Dirty rate, pages per second.
    pub dirty_rate: u64,
    /// Pages that would be dirty if the guest stopped now (upper bound).
    pub pending: u64,
    /// Expected downtime if the guest stopped now (the fixed part and the
    /// pending pages), microseconds.
    pub expected_us: u64,
    /// Why pre-copy ended, once it has.
    pub ended: Option<End>,
    /// How long after throttling a checkpoint waits ([`Self::with_settle`]).
    settle_ns: u64,
    /// What is left of that wait.
    settle_left: u64,
    /// Whether the last round would have ended pre-copy but for that wait.
    pub deferred: bool,
    /// Whether the last round would have throttled harder but for that
    /// wait.
    pub held_off: bool,
}

impl Convergence {
    /// A policy for a guest of `ram_pages` pages whose checkpoint can stage
    /// `staging_pages`.
    pub fn new(
        max_downtime_ms: u32,
        auto_converge: bool,
        ram_pages: u64,
        staging_pages: u64,
    ) -> Self {
        Self {
            max_downtime_ns: u64::from(max_downtime_ms) * 1_000_000,
            auto_converge,
            max_bytes: ram_pages.saturating_mul(PAGE_SIZE as u64).saturating_mul(4),
            max_pending: staging_pages / 2,
            bytes: 0,
            ns: 0,
            work_pages: 0,
            work_ns: 0,
            last: Round::default(),
            stalled: 0,
            fewest: u64::MAX,
            fixed_ns: 0,
            fits: false,
            bandwidth: 0,
            page_rate: 0,
            dirty_rate: 0,
            pending: 0,
            expected_us: 0,
            ended: None,
            settle_ns: 0,
            settle_left: 0,
            deferred: false,
            held_off: false,
        }
    }

    /// After each throttling, no checkpoint for `ns`: a thread just
    /// throttled may still write in bursts that long (see the caller's
    /// throttle), and a burst that lands in the checkpoint is staged and
    /// sent while the guest is stopped, where a round would have absorbed
    /// it.
    pub fn with_settle(mut self, ns: u64) -> Self {
        self.settle_ns = ns;
        self
    }

    /// The fixed part of the downtime: what the source's rehearsal took and
    /// what the target said its own took (0 when it did not say), in
    /// microseconds. Both rehearsals run cold; under an emulator, which
    /// translates code the first time it runs, they take about twice what
    /// the same steps take in the downtime, so the estimate errs towards
    /// fewer pending pages, hence a shorter downtime.
    pub fn set_fixed_us(&mut self, us: u64) {
        self.fixed_ns = us.saturating_mul(1000);
    }

    /// The fixed part of the downtime, microseconds.
    pub fn fixed_us(&self) -> u64 {
        self.fixed_ns / 1000
    }

    /// The dirtiers were throttled (harder): waits the settle time again.
    pub fn throttled(&mut self) {
        self.settle_left = self.settle_ns;
    }

    /// What is left of the settle time, in nanoseconds: after a deferred
    /// round, the caller waits that long rather than spin short rounds.
    pub fn settle_left_ns(&self) -> u64 {
        self.settle_left
    }

    /// The caller waited `ns` after the last round: the writes of the wait
    /// are found by the next round, as if the last round had lasted longer.
    pub fn waited(&mut self, ns: u64) {
        self.settle_left = self.settle_left.saturating_sub(ns);
        self.last.ns = self.last.ns.saturating_add(ns);
    }

    /// `a * b / c`, 0 when `c` is 0. The product saturates, which real
    /// measurements are far from (pages times nanoseconds: about 2^50);
    /// the kernel has no 128-bit division.
    fn scale(a: u64, b: u64, c: u64) -> u64 {
        a.saturating_mul(b).checked_div(c).unwrap_or(0)
    }

    /// Folds round `round`'s page work into the cost of a page.
    fn learn_cost(&mut self, round: u32, r: &Round) {
        if r.checked == 0 {
            return;
        }
        if round == 1 {
            // Round 0's pages say little about the ones a workload dirties.
            self.work_pages = 0;
            self.work_ns = 0;
        }
        self.work_pages = (self.work_pages / 4).saturating_add(r.checked);
        self.work_ns = (self.work_ns / 4).saturating_add(r.work_ns.max(1));
        self.page_rate = Self::scale(self.work_pages, 1_000_000_000, self.work_ns);
    }

    /// Takes round `round`'s measurements (`total_bytes` sent so far) and
    /// decides.
    pub fn after_round(&mut self, round: u32, r: Round, total_bytes: u64) -> Decision {
        self.settle_left = self.settle_left.saturating_sub(r.ns.max(1));
        let decision = self.decide(round, r, total_bytes);
        if decision == Decision::Throttle {
            self.throttled();
        }
        self.ended = match decision {
            Decision::Checkpoint if r.pages == 0 => Some(End::Clean),
            Decision::Checkpoint if self.fits => Some(End::Fits),
            Decision::Checkpoint if round >= MAX_ROUNDS => Some(End::RoundCap),
            Decision::Checkpoint => Some(End::ByteCap),
            Decision::Floor => Some(End::Floor),
            _ => None,
        };
        decision
    }

    /// [`Self::after_round`]'s decision.
    fn decide(&mut self, round: u32, r: Round, total_bytes: u64) -> Decision {
        let r = Round {
            ns: r.ns.max(1),
            ..r
        };
        self.bytes = self.bytes.saturating_add(r.bytes);
        self.ns = self.ns.saturating_add(r.ns);
        self.bandwidth = Self::scale(self.bytes, 1_000_000_000, self.ns);
        self.learn_cost(round, &r);
        let previous = core::mem::replace(&mut self.last, r);
        if round == 0 {
            return Decision::Continue;
        }
        // Pages written during the previous round, per second.
        self.dirty_rate = Self::scale(r.checked, 1_000_000_000, previous.ns);
        // Pages written during this round: at most what this round checked
        // if it was the shorter one, else that scaled by the durations.
        self.pending = Self::scale(r.checked, r.ns.max(previous.ns), previous.ns);
        let fewest = self.fewest;
        self.fewest = fewest.min(r.checked);
        let transfer_ns = Self::scale(self.pending, self.work_ns, self.work_pages);
        let expected_ns = transfer_ns.saturating_add(self.fixed_ns);
        self.expected_us = expected_ns / 1000;
        self.fits = expected_ns <= self.max_downtime_ns && self.pending <= self.max_pending;
        let capped = round >= MAX_ROUNDS || total_bytes >= self.max_bytes;
        self.deferred = (self.fits || r.pages == 0) && self.settle_left > 0 && !capped;
        self.held_off = false;
        if self.deferred {
            return Decision::Continue;
        }
        if self.fits || r.pages == 0 || capped {
            return Decision::Checkpoint;
        }
        let outrun = self.dirty_rate.saturating_mul(10) >= self.page_rate.saturating_mul(8);
        let no_progress = round >= 2 && r.checked.saturating_mul(10) >= fewest.saturating_mul(9);
        if !(outrun || no_progress) {
            self.stalled = 0;
            return Decision::Continue;
        }
        self.stalled = self.stalled.saturating_add(1);
        match (self.auto_converge, r.dirtiers, self.stalled) {
            (_, 0, s) if s >= STALLED_ROUNDS => Decision::Floor,
            (true, 0, _) => Decision::Continue,
            (true, _, _) if self.settle_left > 0 => {
                self.held_off = true;
                Decision::Continue
            }
            (true, _, _) => Decision::Throttle,
            (false, _, s) if s >= STALLED_ROUNDS => Decision::GiveUp,
            (false, _, _) => Decision::Continue,
        }
    }
}
