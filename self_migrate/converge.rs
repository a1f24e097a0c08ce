// SPDX-License-Identifier: GPL-2.0

//! When to stop pre-copy: the convergence policy.
//!
//! After each round the policy measures the link's page rate (all pages
//! sent so far over all the time spent sending them; with compression a
//! page costs anything from a few bytes to a page, so pages, not bytes,
//! are what the rate is counted in), its bandwidth in bytes (shown in
//! `stats`) and the dirty rate (the pages round *k* found changed, over the
//! duration of round *k-1*, during which they were written). If the guest
//! stopped now, it would have about `rate × (duration of round k)` pages to
//! copy; sending them at the measured page rate is the expected transfer
//! downtime, which `stats` shows live. Pre-copy stops when that fits
//! `max_downtime_ms` and the pages fit comfortably (half) in the staging
//! buffer the checkpoint copies them into: a link fast in pages (small,
//! compressed ones) can promise more pages in 50 ms than the buffer holds.
//!
//! A round is *not converging* when the dirty rate is at least 80% of the
//! page rate, or when it sent no fewer pages than the round before. Then,
//! with `auto_converge` on (the default), the heaviest dirtiers are
//! throttled (see [`crate::throttle`]); with it off, pre-copy gives up after
//! three rounds without progress and the guest carries on where it is.
//! Whatever happens, pre-copy ends after [`MAX_ROUNDS`] rounds or once it
//! sent four times the guest's RAM; the checkpoint is attempted then, and
//! fails cleanly if the rest does not fit its staging buffer.

use crate::proto::wire::PAGE_SIZE;

/// Most pre-copy rounds.
pub(crate) const MAX_ROUNDS: u32 = 30;

/// What to do after a round.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Another round.
    Continue,
    /// Another round, with the dirtiers throttled harder.
    Throttle,
    /// Stop the guest and copy the rest.
    Checkpoint,
    /// Give up: the workload outruns the link and throttling is off.
    GiveUp,
}

/// The policy's inputs and what it measured.
pub(crate) struct Convergence {
    max_downtime_ns: u64,
    auto_converge: bool,
    /// Bytes after which pre-copy stops (four times the RAM).
    max_bytes: u64,
    /// Most pages left for the checkpoint.
    max_pending: u64,
    /// Pages, bytes and nanoseconds spent sending, over all rounds.
    pages: u64,
    bytes: u64,
    ns: u64,
    /// The previous round's duration and page count.
    last_ns: u64,
    last_pages: u64,
    /// Rounds in a row without progress.
    stalled: u32,
    /// Bandwidth, bytes per second.
    pub(crate) bandwidth: u64,
    /// Pages sent per second.
    pub(crate) page_rate: u64,
    /// Dirty rate, pages per second.
    pub(crate) dirty_rate: u64,
    /// Expected transfer downtime if the guest stopped now, microseconds.
    pub(crate) expected_us: u64,
}

impl Convergence {
    /// A policy for a guest of `ram_pages` pages whose checkpoint can
    /// stage `staging_pages`.
    pub(crate) fn new(
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
            pages: 0,
            bytes: 0,
            ns: 0,
            last_ns: 0,
            last_pages: 0,
            stalled: 0,
            bandwidth: 0,
            page_rate: 0,
            dirty_rate: 0,
            expected_us: 0,
        }
    }

    /// Takes round `round`'s measurements (`pages` sent as `bytes` in
    /// `ns`; `total_bytes` so far) and decides.
    pub(crate) fn after_round(
        &mut self,
        round: u32,
        pages: u64,
        bytes: u64,
        ns: u64,
        total_bytes: u64,
    ) -> Decision {
        self.pages += pages;
        self.bytes += bytes;
        self.ns += ns.max(1);
        self.bandwidth = self
            .bytes
            .saturating_mul(1_000_000_000)
            .checked_div(self.ns)
            .unwrap_or(0);
        self.page_rate = self
            .pages
            .saturating_mul(1_000_000_000)
            .checked_div(self.ns)
            .unwrap_or(0);
        let previous_ns = self.last_ns;
        let previous_pages = self.last_pages;
        self.last_ns = ns.max(1);
        self.last_pages = pages;
        if round == 0 {
            return Decision::Continue;
        }
        // Pages written during the previous round, per second.
        self.dirty_rate = pages
            .saturating_mul(1_000_000_000)
            .checked_div(previous_ns)
            .unwrap_or(0);
        // Pages that would be dirty if the guest stopped now, and the time
        // to send them.
        let pending = self.dirty_rate.saturating_mul(self.last_ns) / 1_000_000_000;
        let transfer_ns = pending
            .saturating_mul(1_000_000_000)
            .checked_div(self.page_rate)
            .unwrap_or(u64::MAX);
        self.expected_us = transfer_ns / 1000;
        if (transfer_ns <= self.max_downtime_ns && pending <= self.max_pending) || pages == 0 {
            return Decision::Checkpoint;
        }
        if round >= MAX_ROUNDS || total_bytes >= self.max_bytes {
            return Decision::Checkpoint;
        }
        let outrun = self.dirty_rate.saturating_mul(10) >= self.page_rate.saturating_mul(8);
        let no_progress =
            round >= 2 && pages.saturating_mul(10) >= previous_pages.saturating_mul(9);
        if !(outrun || no_progress) {
            self.stalled = 0;
            return Decision::Continue;
        }
        self.stalled += 1;
        match (self.auto_converge, self.stalled) {
            (true, _) => Decision::Throttle,
            (false, s) if s >= 3 => Decision::GiveUp,
            (false, _) => Decision::Continue,
        }
    }
}
