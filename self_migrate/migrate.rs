// SPDX-License-Identifier: GPL-2.0

//! The migration thread: connect and admit, pre-copy rounds, checkpoint,
//! send the rest, (commit).
//!
//! One function per phase, each undoing what it did on failure, so that
//! before commit every failure leaves the guest running as if nothing had
//! happened. After the commit the source powers off; the image carries on
//! on the target, returning from the checkpoint a second time.

use crate::announce;
use crate::bindings;
use crate::channel::{refusal, Channel, Wallet};
use crate::checkpoint::{self, Mark, Outcome, Thaw};
use crate::clock::{now_ns, sleep_ms, sleep_us};
use crate::control::{self, Request, Tracker};
use crate::cpu_context;
use crate::crypto::{random_bytes, Gcm, Sha256};
use crate::devices;
use crate::dma;
use crate::downtime::Phases;
use crate::errno::errno;
use crate::failure::{Context, Failure};
use crate::fence::Fence;
use crate::machine;
use crate::pack::Packer;
use crate::precopy::{self, Tally};
use crate::proto::admission::{encode_token_record, TokenReply};
use crate::proto::bundle::TokenBundle;
use crate::proto::chain::{chain_anchor, Link, Meter, Payer, LINK_LEN};
use crate::proto::converge::{self, Convergence, Decision};
use crate::proto::crypto::{scrub, SessionAead, TAG_LEN};
use crate::proto::handoff::{tsc_delta_us, Handoff};
use crate::proto::machine::MachineDesc;
use crate::proto::seal::{stream_key, SALT_LEN};
use crate::proto::uapi::{self, State};
use crate::proto::wire::{
    decode_abort, BatchWriter, CommitInfo, HelloReply, RecordKind, Refusal, ResumeInfo,
    ABORT_TARGET_FAILED, ABORT_VERIFY_FAILED, FINAL_ROUND, HEADER_LEN, MAX_PAYLOAD, PAGE_SIZE,
    TOKEN_RECORD_LEN,
};
use crate::shim;
use crate::socket::TcpStream;
use crate::split::Splits;
use crate::staging::Staging;
use crate::throttle::{self, Throttle};
use crate::tracker::Tracker as PageTracker;
use crate::tsc;
use crate::uevent;
use crate::urgent::Urgent;
use crate::verify::Verify;
use kernel::prelude::*;

/// How long connecting may take.
const CONNECT_TIMEOUT_MS: u32 = 5_000;

/// How long each send or receive may take before the peer counts as dead.
const IO_TIMEOUT_MS: u32 = 15_000;

/// Abort reason sent to the target: the source gave up.
const ABORT_SOURCE_FAILED: u32 = 1;

/// Thread entry point.
pub(crate) fn run() {
    let Some(req) = control::take_request() else {
        return;
    };
    let start = now_ns();
    let result = migrate(&req);
    if let Err(f) = &result {
        pr_warn!(
            "migration failed: {} (errno {})\n",
            f.reason,
            -f.err.to_errno()
        );
    }
    // A restored image's clock does not know how long it was stopped; the
    // session says how far off it is.
    let skew = *result.as_ref().unwrap_or(&0);
    control::finish(
        result.map(|_| ()),
        ((now_ns() - start - skew).max(0) / 1_000_000) as u64,
    );
    if let Ok((s, _, _)) = control::status() {
        uevent::migration_ended(s.state.as_str(), s.last_errno, s.downtime_us, s.total_ms);
    }
}

/// The whole migration. On success returns how far this guest's monotonic
/// clock is off the true elapsed time (nonzero when it is the image resumed
/// on the target).
fn migrate(req: &Request) -> Result<i64, Failure> {
    let desc = machine::describe().context("cannot describe this machine")?;
    pr_info!(
        "migrating to {}: {} RAM pages, {} vCPUs, max downtime {} ms, verify {}, tracker {}\n",
        req.target,
        desc.total_pages(),
        desc.vcpus,
        req.max_downtime_ms,
        if req.verify { "on" } else { "off" },
        req.tracker.as_str()
    );
    let stream = TcpStream::connect(&req.target, CONNECT_TIMEOUT_MS)
        .context("cannot connect to the target")?;
    stream.set_timeouts(IO_TIMEOUT_MS);
    let bundle = TokenBundle::decode(&req.token).map_err(|e| {
        Failure::new(
            errno(e.errno()),
            "the token is not a selfmig token bundle (selfmig token mint makes one)",
        )
    })?;
    // The payer's links, kept for the whole connection.
    let mut links = KVVec::from_elem(
        [0u8; LINK_LEN],
        Payer::storage_len(bundle.chain_len),
        GFP_KERNEL,
    )
    .map_err(|_| ENOMEM)
    .context("cannot allocate the payment chain")?;
    control::set_live(Some(stream.shutdown_handle()))?;
    let mut chan = Channel::new(&stream)?;
    let result = match present_token(&mut chan, &bundle, &mut links)
        .and_then(|()| session(&mut chan, &stream, &desc, req))
    {
        // An abort shuts the socket down, so the failure the session saw is
        // a broken pipe; report the cause instead.
        Err(_) if control::abort_requested() => Err(control::aborted()),
        Err(f) => {
            // Best effort: tell the target to drop what it has.
            let _ = chan.send(RecordKind::Abort, &ABORT_SOURCE_FAILED.to_le_bytes());
            Err(f)
        }
        Ok(skew) => Ok(skew),
    };
    // Withdraw the abort handle before the stream is dropped.
    let _ = control::set_live(None);
    result
}

/// Presents the token, derives the stream key from the target's answer,
/// and from then on seals the stream and pays as pages go out.
fn present_token<'s>(
    chan: &mut Channel<'_, 's>,
    bundle: &TokenBundle,
    links: &'s mut [Link],
) -> Result<(), Failure> {
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt);
    let mut record = [0u8; HEADER_LEN + TOKEN_RECORD_LEN + TAG_LEN];
    let seq = chan.next_seq();
    let len = encode_token_record(&bundle.token, &salt, seq, &mut record)
        .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
    chan.send_built(&mut record, len)?;
    let (header, payload) = chan.recv()?;
    if header.kind != RecordKind::TokenReply {
        return Err(Failure::new(
            errno(uapi::EPROTO),
            "target answered the token with another record",
        ));
    }
    let reply =
        TokenReply::decode(payload).map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
    if !reply.accepted() {
        return Err(refusal(reply.code));
    }
    let mut key = stream_key(&Sha256, &bundle.session_key, &salt, &reply.salt);
    let aead = Gcm::with_key(&key);
    scrub(&mut key);
    chan.seal_with(aead.map_err(|_| Failure::new(EINVAL, "cannot set up the stream key"))?);
    let anchor = chain_anchor(&Sha256, &bundle.seed, bundle.chain_len);
    let payer = Payer::new(&Sha256, &bundle.seed, bundle.chain_len, &anchor, links)
        .map_err(|_| Failure::new(EINVAL, "cannot set up the payment chain"))?;
    chan.pay_with(Wallet::new(
        payer,
        Meter::new(bundle.granted_pages, bundle.unit_pages),
    ));
    Ok(())
}

/// How long the commit may take to reach the target's TCP.
const COMMIT_ACK_TIMEOUT_MS: u32 = 2_000;

/// How long pre-copy's thread sleeps before each checkpoint attempt (a
/// range, in microseconds, for the high-resolution timer; see `session`).
const CATCH_UP_US: (u32, u32) = (500, 1000);

/// How long this VM stays idle after the commit, out of the way of the
/// target's resume, before it finishes its own and powers off (see
/// [`commit`]). Well over the jump and the resume under an emulator.
const LINGER_MS: u32 = 300;

/// Pages the staging buffer holds (32 MiB). A workload that falls behind
/// its own pace while the migration thread has the CPU catches up in a
/// burst (the bench's dirtiers do): 16 MiB overflowed in 3 of 24 dirty50
/// runs of the bench, with dirty sets of up to 4,060 pages in the others.
const STAGING_PAGES: usize = 8192;

/// Most checkpoint attempts (one more pre-copy round, and a harder
/// throttle, between attempts).
const MAX_ATTEMPTS: u32 = 5;

/// Everything that happens over the connection; returns the clock skew as
/// [`migrate`] does.
fn session(
    chan: &mut Channel<'_, '_>,
    stream: &TcpStream,
    desc: &MachineDesc,
    req: &Request,
) -> Result<i64, Failure> {
    let target_us = u64::from(admit(chan, desc)?);
    // A device the checkpoint would leave broken, here or on the target.
    if !devices::virtio_pm_ok("cannot migrate") {
        return Err(Failure::new(
            errno(uapi::EOPNOTSUPP),
            "a virtio driver cannot freeze and restore its device (named in the log)",
        ));
    }
    control::update(|_, x| x.tracker_used = Some(req.tracker));
    let mut tracker = PageTracker::new(desc, req.tracker == Tracker::Paging)
        .context("cannot allocate the dirty tracker")?;
    // Joined again when the session ends, here or on the target.
    let _splits = (req.tracker == Tracker::Paging).then(|| Splits::new(desc, true));
    tracker.watch_text();
    let mut buf = KVVec::from_elem(0u8, HEADER_LEN + MAX_PAYLOAD + TAG_LEN, GFP_KERNEL)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the send buffer")?;
    let mut staging = Staging::new(STAGING_PAGES)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the staging buffer")?;
    let frames = desc.ranges().last().map_or(0, |r| r.end_pfn());
    let mut packer = Packer::new(req.compress, frames)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the page packer")?;
    tracker.exclude_self();
    tracker.exclude(buf.as_ptr(), buf.len());
    for (addr, len) in packer.buffers() {
        tracker.exclude(addr, len);
    }
    staging.exclude_from(&mut tracker);
    // The page the target's loader fills in for the resumed image
    // (vmalloc: page-aligned). Not part of the image.
    let mut handoff = VVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the hand-off page")?;
    tracker.exclude(handoff.as_ptr(), PAGE_SIZE);
    let mut verify = match req.verify {
        true => Some(
            Verify::new(desc, &mut tracker)
                .map_err(|_| ENOMEM)
                .context("cannot allocate the verify hashes")?,
        ),
        false => None,
    };
    if let Some((start, end)) = dma::swiotlb_pool() {
        tracker.exclude_frames(start, end);
        control::update(|_, x| x.bounce_pages = end - start);
    }

    control::update(|s, _| s.state = State::Precopy);
    let mut policy = Convergence::new(
        req.max_downtime_ms,
        req.auto_converge,
        desc.total_pages(),
        STAGING_PAGES as u64,
    )
    .with_settle(throttle::SETTLE_NS);
    policy.set_fixed_us(target_us);
    control::update(|_, x| {
        x.target_rehearsal_us = target_us;
        x.downtime_fixed_us = target_us;
    });
    let mut throttle = Throttle::new().context("cannot allocate the throttle")?;
    let mut round = 0;
    loop {
        if round == 1 && req.rehearse {
            policy.set_fixed_us(target_us + rehearse()?);
            control::update(|_, x| x.downtime_fixed_us = policy.fixed_us());
        }
        let (t0, bytes0) = (now_ns(), chan.bytes_sent);
        let sent = precopy::round(chan, desc, &mut tracker, &mut packer, &mut buf, round)?;
        let ns = (now_ns() - t0).max(0) as u64;
        let heavy = heavy_dirtiers(&tracker)?;
        let measured = converge::Round {
            pages: sent.pages,
            checked: sent.checked,
            bytes: chan.bytes_sent - bytes0,
            ns,
            work_ns: sent.work_ns,
            // Throttled as hard as it goes, a dirtier is part of the floor.
            dirtiers: match throttle.can_tighten(&heavy) {
                true => heavy.len() as u32,
                false => 0,
            },
        };
        let decision = policy.after_round(round, measured, chan.bytes_sent);
        log_round(round, &measured, &policy, decision);
        if decision == Decision::Throttle {
            throttle_dirtiers(&heavy, &mut throttle, &policy, round);
        }
        control::update(|s, x| {
            s.expected_downtime_us = policy.expected_us;
            x.bandwidth = policy.bandwidth;
            x.page_rate = policy.page_rate;
            x.dirty_rate = policy.dirty_rate;
            x.throttle_share_bp = throttle.share();
            x.throttled_threads = throttle.threads() as u32;
            x.precopy_end = policy.ended;
        });
        match decision {
            Decision::Checkpoint | Decision::Floor => break,
            Decision::GiveUp => {
                return Err(Failure::new(
                    errno(uapi::ETIMEDOUT),
                    "pre-copy does not converge: the guest dirties memory faster than the link sends it (auto_converge is off)",
                ))
            }
            Decision::Continue | Decision::Throttle => round += 1,
        }
        if policy.deferred {
            // Rather than short rounds, wait until the throttled threads
            // settle; the next round finds what they wrote meanwhile.
            let t0 = now_ns();
            let ms = policy.settle_left_ns().div_ceil(1_000_000);
            sleep_ms(ms.min(u64::from(u32::MAX)) as u32);
            policy.waited((now_ns() - t0).max(0) as u64);
        }
    }

    if round == 0 && req.rehearse {
        rehearse()?;
    }

    for attempt in 1..=MAX_ATTEMPTS {
        control::update(|s, x| {
            s.state = State::Checkpoint;
            x.attempts = attempt;
        });
        // The guest's tasks had little of the CPU in the round just ended:
        // let them answer what they received meanwhile, so that the outage
        // its peers see starts with the checkpoint, not before it.
        sleep_us(CATCH_UP_US.0, CATCH_UP_US.1);
        // The fence stays up from the checkpoint until the migration ends.
        let fence = Fence::install(stream.sk()).context("cannot install the output fence")?;
        handoff.iter_mut().for_each(|b| *b = 0);
        let t0 = now_ns();
        // Real-time from the checkpoint on (see `urgent`): the device
        // phases wait for workers, and the guest's tasks, woken by packets
        // the live NIC takes in, would run in between.
        let urgent = Urgent::raise();
        match checkpoint::take(desc, &mut tracker, &mut staging, verify.as_mut()) {
            Ok(Outcome::Restored) => {
                // This is the image, running on the target now: the
                // downtime ends here. It opens the fence it was taken under
                // and takes over the network, then reads the hand-off
                // (0.2-0.4 ms under TCG, which the guest's peers need not
                // wait for), then removes the fence (a grace period). It
                // logs last: a legacy console writes each line with
                // interrupts off, and the guest's own tasks have waited
                // long enough.
                let (tsc, now) = (tsc::rdtsc(), now_ns());
                fence.open();
                announce::announce();
                let (read, skew) = resumed(&handoff, t0, tsc, now);
                drop(urgent);
                drop(fence);
                // Once more, after the old VM has surely gone.
                sleep_ms(500);
                announce::announce();
                if let Some((h, phases)) = read {
                    report_resumed(&h, &phases, req.verify);
                }
                return Ok(skew);
            }
            Ok(Outcome::Saved {
                staged,
                stopped_ns,
                thaw,
            }) => {
                announce::reprogram();
                control::update(|s, x| {
                    s.state = State::Committing;
                    x.staged_pages = staged as u64;
                    x.checkpoint_us = (stopped_ns / 1000) as u64;
                });
                let staged = Staged {
                    staging: &staging,
                    verify: verify.as_ref(),
                    handoff: &handoff,
                    // The monotonic clock did not count the time the system
                    // core was suspended: the phases after the checkpoint
                    // are timed from where it would have started.
                    t0: now_ns() - stopped_ns,
                    stopped_ns: stopped_ns as u64,
                    thaw,
                    _fence: fence,
                };
                let _urgent = urgent;
                return finish(chan, &mut tracker, &mut packer, &mut buf, staged, stream)
                    .map(|()| 0);
            }
            Err(f) if f.err == ENOSPC && attempt < MAX_ATTEMPTS => {
                announce::reprogram();
                drop(fence);
                control::update(|s, _| s.state = State::Precopy);
                // More changed than the buffer holds: the dirtiers outran
                // the estimate. Brake them harder before trying again.
                if req.auto_converge {
                    let heavy = heavy_dirtiers(&tracker)?;
                    throttle_dirtiers(&heavy, &mut throttle, &policy, round);
                    control::update(|_, x| {
                        x.throttle_share_bp = throttle.share();
                        x.throttled_threads = throttle.threads() as u32;
                    });
                }
                round += 1;
                precopy::round(chan, desc, &mut tracker, &mut packer, &mut buf, round)?;
            }
            Err(f) => {
                announce::reprogram();
                return Err(f);
            }
        }
    }
    Err(Failure::new(
        ENOSPC,
        "the guest changes memory faster than it can be staged",
    ))
}

/// Rehearses the checkpoint (see `rehearsal`) between pre-copy's first
/// round and the next: the code it runs is then translated (under an
/// emulator) before the checkpoint, a device that refuses to freeze is
/// found before the guest stops, and the pages it dirties, the ones the
/// checkpoint will dirty again, are sent in a later round and kept for
/// patches (see `resent`).
///
/// Returns how long it took, in microseconds: the source's share of the
/// downtime's fixed part (see `converge`).
fn rehearse() -> Result<u64, Failure> {
    let times = checkpoint::rehearse()?;
    times.log("the checkpoint");
    control::update(|_, x| {
        x.rehearsal_us = times.total();
        x.rehearsal_core_us = times.core;
    });
    Ok(times.total())
}

/// Logs what a pre-copy round measured and what the policy made of it.
fn log_round(round: u32, r: &converge::Round, policy: &Convergence, decision: Decision) {
    let next = match decision {
        Decision::Continue if policy.deferred => {
            "another round: the throttled threads may still write in bursts"
        }
        Decision::Continue if policy.held_off => {
            "another round: the last throttling has not settled yet"
        }
        Decision::Continue => "another round",
        Decision::Throttle => "another round, throttled",
        Decision::Checkpoint => "checkpoint",
        Decision::GiveUp => "giving up",
        Decision::Floor => {
            "checkpoint: the rounds stopped shrinking and no process can be throttled (harder)"
        }
    };
    pr_info!(
        "round {}: {} of {} pages checked sent ({} KiB) in {} ms, {} ms of it on pages; {} pages/s dirtied, {} pages/s checked; about {} pages pending, {} ms to check and send, {} ms downtime expected: {}\n",
        round,
        r.pages,
        r.checked,
        r.bytes / 1024,
        r.ns / 1_000_000,
        r.work_ns / 1_000_000,
        policy.dirty_rate,
        policy.page_rate,
        policy.pending,
        policy.expected_us.saturating_sub(policy.fixed_us()) / 1000,
        policy.expected_us / 1000,
        next
    );
}

/// Throttles the processes that dirty the most (auto-converge), as hard as
/// it goes (see [`Throttle::tighten`]).
fn throttle_dirtiers(
    heavy: &[*mut bindings::mm_struct],
    throttle: &mut Throttle,
    policy: &Convergence,
    round: u32,
) {
    let share = throttle.tighten(heavy);
    pr_info!(
        "round {}: the guest dirties {} pages/s against {} pages/s ({} KiB/s) sent; {} threads of {} processes throttled to {} basis points of a CPU\n",
        round,
        policy.dirty_rate,
        policy.page_rate,
        policy.bandwidth / 1024,
        throttle.threads(),
        heavy.len(),
        share
    );
}

/// The address spaces that dirtied enough in the last harvest to be
/// throttled (see [`PageTracker::heavy_dirtiers`]).
fn heavy_dirtiers(tracker: &PageTracker) -> Result<KVVec<*mut bindings::mm_struct>, Failure> {
    let mut heavy = KVVec::new();
    tracker
        .heavy_dirtiers(&mut heavy)
        .context("cannot list the dirtying tasks")?;
    Ok(heavy)
}

/// The target holds the complete image: commit, and stop for good. `log`
/// runs once this guest is whole again (its own log lines go out then).
///
/// Everything this VM does after the commit is work for nothing, and may be
/// work taken from the target: two VMs of one host share its CPUs, and the
/// target is resuming the guest right then (the jump and the image's resume
/// take tens of milliseconds under an emulator). So this VM waits for its
/// TCP to have the commit acknowledged, then stays idle for
/// [`LINGER_MS`] before the rest of its own resume (devices thawed, CPUs
/// online, log lines through the console) and the power-off.
fn commit(
    chan: &mut Channel<'_, '_>,
    stream: &TcpStream,
    info: &CommitInfo,
    thaw: Thaw,
    log: impl FnOnce(),
) -> Result<(), Failure> {
    chan.send(RecordKind::Commit, &info.encode())?;
    // From the moment the commit reaches the target, the guest lives there.
    // Wait until its TCP has it, then power off, whatever happens.
    let acked = stream.wait_acked(COMMIT_ACK_TIMEOUT_MS).is_ok();
    sleep_ms(LINGER_MS);
    drop(thaw);
    log();
    if !acked {
        pr_warn!("commit not acknowledged in time; powering off anyway (never both running)\n");
    }
    pr_info!("committed; this VM powers off, the guest continues on the target\n");
    // SAFETY: Process context; does not return.
    unsafe { bindings::kernel_power_off() };
    Ok(())
}

/// What a checkpoint left to send.
struct Staged<'a> {
    staging: &'a Staging,
    verify: Option<&'a Verify>,
    handoff: &'a [u8],
    /// When the checkpoint began, on the monotonic clock as if it had
    /// counted the checkpoint in full.
    t0: i64,
    /// How long the guest was stopped for it.
    stopped_ns: u64,
    /// The rest of this guest's own resume, until the commit is sent or
    /// the migration abandoned (dropped before the fence: the guest is
    /// whole again before it talks).
    thaw: Thaw,
    /// Up from the checkpoint until the migration ends.
    _fence: Fence,
}

/// This is the image resumed on the target: reads what the loader's
/// hand-off says happened after the checkpoint (which it could not see),
/// and times the downtime's phases by it, up to `tsc` (a time-stamp counter
/// reading taken when the monotonic clock read `now`). Returns them, if the
/// hand-off is readable, and how far this guest's monotonic clock is off
/// the true time elapsed since `t0`.
fn resumed(handoff: &[u8], t0: i64, tsc: u64, now: i64) -> (Option<(Handoff, Phases)>, i64) {
    let h = match Handoff::decode(handoff) {
        Ok(h) => h,
        Err(e) => {
            pr_warn!(
                "resumed on the target, but its hand-off is unreadable ({}); downtime unknown\n",
                e.as_str()
            );
            return (None, 0);
        }
    };
    let phases = Phases::from_handoff(&h, tsc);
    let skew = (now - t0) - phases.total_us() as i64 * 1000;
    (Some((h, phases)), skew)
}

/// Logs and publishes what [`resumed`] read.
fn report_resumed(h: &Handoff, phases: &Phases, verify: bool) {
    let total = phases.total_us();
    pr_info!(
        "resumed on the target; downtime {} us: checkpoint {}, transfer {}, target {}, commit {}, jump {}, resume {} (+ one-way commit latency, not measured)\n",
        total,
        phases.checkpoint_us,
        phases.transfer_us,
        phases.target_us,
        phases.commit_us,
        phases.jump_us,
        phases.resume_us
    );
    let at = |m| tsc_delta_us(h.tsc_jump, checkpoint::marked(m), h.tsc_khz);
    let (entry, syscore) = (at(Mark::Entry), at(Mark::Syscore));
    let (early, devices, cpus) = (at(Mark::DevicesEarly), at(Mark::Devices), at(Mark::Cpus));
    let copy = tsc_delta_us(h.tsc_trampoline, h.tsc_copied, h.tsc_khz);
    pr_info!(
        "resume: trampoline {} us (copy {}, {} slotted pages already in place; {} left out as unwritten), syscore {}, devices (noirq/early) {}, devices {}, CPUs {}\n",
        entry,
        copy,
        h.pages_in_place,
        h.pages_unwritten,
        syscore.saturating_sub(entry),
        early.saturating_sub(syscore),
        devices.saturating_sub(early),
        cpus.saturating_sub(devices)
    );
    pr_info!(
        "target: image of {} frames ({} written in place, {} of them moved home between rounds; {} in slots, {} of them identical at home when they arrived), {} pages received; from the CPU context to Complete {} us\n",
        h.image_frames,
        h.frames_in_place,
        h.moved_home,
        h.slotted,
        h.identical_on_arrival,
        h.pages_received,
        tsc_delta_us(h.tsc_context, h.tsc_complete, h.tsc_khz)
    );
    if verify {
        pr_info!(
            "the target verified {} pages of the image before resuming\n",
            h.pages_verified
        );
    }
    if h.unwritten_misses > 0 {
        pr_err!(
            "the target found {} pages it was about to leave in place different from the image (copied instead): its write watch missed writes\n",
            h.unwritten_misses
        );
    }
    control::update(|s, x| {
        s.downtime_us = total;
        s.pages_sent = h.pages_received;
        s.bytes_sent = h.bytes_received;
        x.staged_pages = h.staged_pages;
        x.checkpoint_us = phases.checkpoint_us;
        x.verify_pages = h.pages_verified;
        x.unwritten_pages = h.pages_unwritten;
        x.unwritten_misses = h.unwritten_misses;
        x.downtime = *phases;
    });
}

/// After the checkpoint: sends the staged pages and where to resume, and
/// waits for the target's verdict. The fence is up until this returns.
fn finish(
    chan: &mut Channel<'_, '_>,
    tracker: &mut PageTracker,
    packer: &mut Packer,
    buf: &mut [u8],
    staged: Staged<'_>,
    stream: &TcpStream,
) -> Result<(), Failure> {
    let staging = staged.staging;
    let bytes0 = chan.bytes_sent;
    let mut rest = Tally::default();
    let mut index = 0;
    while index < staging.len() {
        let mut batch = BatchWriter::new(&mut *buf, FINAL_ROUND)
            .map_err(|_| Failure::new(ENOMEM, "send buffer too small"))?;
        let mut tally = Tally::default();
        while let Some((pfn, page)) = staging.get(index) {
            if batch.is_full() {
                break;
            }
            packer.push_final(&mut batch, tracker, pfn, page, &mut tally)?;
            index += 1;
        }
        precopy::flush(chan, batch, &tally)?;
        rest.add(&tally);
    }
    let rest_bytes = chan.bytes_sent - bytes0;
    let verify_pages = match staged.verify {
        Some(v) => v.send(chan, buf)?,
        None => 0,
    };
    control::update(|_, x| x.verify_pages = verify_pages);
    let resume_va = cpu_context::resume_entry();
    let info = ResumeInfo {
        cr3: cpu_context::saved_cr3(),
        resume_va,
        resume_pfn: shim::kaddr_to_pfn(resume_va as usize),
        staged_pages: staging.len() as u64,
        verify_pages,
        handoff_pfn: shim::kaddr_to_pfn(staged.handoff.as_ptr() as usize),
    };
    chan.send(RecordKind::CpuContext, &info.encode())?;
    let since = |t0: i64| (now_ns() - t0).max(0) as u64;
    let sent_ns = since(staged.t0);
    let (header, payload) = chan.recv()?;
    match header.kind {
        RecordKind::Abort => match decode_abort(payload) {
            Ok(ABORT_TARGET_FAILED) => Err(Failure::new(
                errno(uapi::EREMOTEIO),
                "target cannot restore the image (its log says why)",
            )),
            Ok(ABORT_VERIFY_FAILED) => Err(Failure::new(
                errno(uapi::EREMOTEIO),
                "target found the image corrupt",
            )),
            Ok(code) => Err(refusal(code)),
            Err(_) => Err(Failure::new(
                errno(uapi::EREMOTEIO),
                "target abandoned the migration",
            )),
        },
        RecordKind::Complete => {
            let complete_ns = since(staged.t0);
            let info = CommitInfo {
                stopped_ns: staged.stopped_ns.min(sent_ns),
                sent_ns,
                complete_ns,
                commit_ns: since(staged.t0).max(complete_ns),
            };
            commit(chan, stream, &info, staged.thaw, || {
                pr_info!(
                    "sent the rest: {} pages ({} as patches, {} otherwise compressed, {} zero) in {} bytes\n",
                    staging.len(),
                    rest.patched,
                    rest.compressed - rest.patched,
                    rest.zero,
                    rest_bytes
                )
            })
        }
        _ => Err(Failure::new(
            errno(uapi::EPROTO),
            "unexpected record after the image",
        )),
    }
}

/// Presents the machine description and waits for the target's verdict:
/// a hello reply, or a sealed abort saying why not (another shape, a guest
/// larger than the grant). Returns the target's share of a downtime as its
/// rehearsal measured it, in microseconds (0: not measured).
fn admit(chan: &mut Channel<'_, '_>, desc: &MachineDesc) -> Result<u32, Failure> {
    chan.send(RecordKind::Hello, &desc.encode())?;
    let (header, payload) = chan.recv()?;
    match header.kind {
        RecordKind::HelloReply => {
            let reply = HelloReply::decode(payload)
                .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
            match reply.status {
                Refusal::Accepted => Ok(reply.detail),
                _ => Err(Failure::new(
                    errno(uapi::EREMOTEIO),
                    "target refused the hello",
                )),
            }
        }
        RecordKind::Abort => {
            let code =
                decode_abort(payload).map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
            Err(refusal(code))
        }
        _ => Err(Failure::new(
            errno(uapi::EPROTO),
            "target answered hello with another record",
        )),
    }
}
