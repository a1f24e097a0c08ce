// SPDX-License-Identifier: GPL-2.0

//! The downtime of a migration, phase by phase, from the clocks that saw
//! each phase.
//!
//! The guest stops when the checkpoint begins and runs again when the
//! restored image has its devices and CPUs back on the target. Between the
//! two, the source's monotonic clock times its share (checkpoint, sending
//! the rest, waiting for the target's verdict, committing) and hands it to
//! the target in the commit; the target's time-stamp counter times the
//! rest (quiescing the target, the jump, the image's resume), read once by
//! the loader and again by the resumed image on the same CPU. Only the
//! one-way trip of the commit record itself is not measured (a fraction of
//! the round trip; well under a millisecond on a LAN).

use crate::proto::handoff::{tsc_delta_us, Handoff};

/// Where the downtime went, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Phases {
    /// Source: devices frozen, registers and changed pages saved, resumed
    /// locally.
    pub(crate) checkpoint_us: u64,
    /// Source: staged pages, hashes and CPU context sent.
    pub(crate) transfer_us: u64,
    /// Target, timed by the source: verification and preparation, until
    /// its `Complete` arrived.
    pub(crate) target_us: u64,
    /// Source: from `Complete` to sending the commit.
    pub(crate) commit_us: u64,
    /// Target: from the commit to the jump (devices quiesced).
    pub(crate) jump_us: u64,
    /// Image on the target: from the jump to devices and CPUs back.
    pub(crate) resume_us: u64,
}

impl Phases {
    /// The phases of the migration that ended in this restored image,
    /// given the loader's hand-off and the counter now.
    pub(crate) fn from_handoff(h: &Handoff, tsc_now: u64) -> Self {
        let c = &h.commit;
        Self {
            checkpoint_us: c.stopped_ns / 1000,
            transfer_us: (c.sent_ns - c.stopped_ns) / 1000,
            target_us: (c.complete_ns - c.sent_ns) / 1000,
            commit_us: (c.commit_ns - c.complete_ns) / 1000,
            jump_us: tsc_delta_us(h.tsc_commit, h.tsc_jump, h.tsc_khz),
            resume_us: tsc_delta_us(h.tsc_jump, tsc_now, h.tsc_khz),
        }
    }

    /// The whole downtime.
    pub(crate) fn total_us(&self) -> u64 {
        self.checkpoint_us
            + self.transfer_us
            + self.target_us
            + self.commit_us
            + self.jump_us
            + self.resume_us
    }
}
