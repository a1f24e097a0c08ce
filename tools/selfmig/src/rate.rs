// SPDX-License-Identifier: GPL-2.0

//! Bandwidth from successive byte counts, and the downtime it implies.

use selfmig_proto::uapi::{State, StatusArgs};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the bandwidth looks: long enough to smooth the bursts of
/// one batch, short enough to follow a change of pace.
pub const WINDOW: Duration = Duration::from_secs(2);

/// The shortest span of samples a bandwidth is computed from; shorter
/// spans (the first reads of a migration) give noise.
pub const MIN_SPAN: Duration = Duration::from_millis(500);

/// Bandwidth over a sliding window of `(time, bytes sent)` samples.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl RateMeter {
    /// A meter looking `window` back.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records that `bytes` had been sent at `now`.
    pub fn push(&mut self, now: Instant, bytes: u64) {
        if self.samples.back().is_some_and(|&(_, b)| bytes < b) {
            // A new migration started: its counters start from zero.
            self.samples.clear();
        }
        self.samples.push_back((now, bytes));
        // Keep one sample at or before the window's start as the baseline.
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; `None` until the samples span
    /// [`MIN_SPAN`].
    pub fn bytes_per_sec(&self) -> Option<f64> {
        let (&(t0, b0), &(t1, b1)) = (self.samples.front()?, self.samples.back()?);
        let span = t1.duration_since(t0);
        if span < MIN_SPAN {
            return None;
        }
        Some((b1 - b0) as f64 / span.as_secs_f64())
    }
}

/// A downtime figure and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Downtime {
    /// The module's own expectation, in microseconds.
    Kernel(u64),
    /// Estimated here: the pages dirtied in the last round, at the bytes
    /// per page so far, over the current bandwidth.
    Estimated(u64),
}

/// The downtime to expect if the guest stopped now: the module's figure
/// when it gives one, else an estimate from `bytes_per_sec`. Only while
/// pre-copy rounds run.
pub fn expected_downtime(s: &StatusArgs, bytes_per_sec: Option<f64>) -> Option<Downtime> {
    if s.state != State::Precopy {
        return None;
    }
    if s.expected_downtime_us > 0 {
        return Some(Downtime::Kernel(s.expected_downtime_us));
    }
    let rate = bytes_per_sec.filter(|r| *r > 0.0)?;
    if s.pages_sent == 0 || s.round < 2 {
        // Round 1 sends everything; its "dirty" count means nothing yet.
        return None;
    }
    let bytes_per_page = s.bytes_sent as f64 / s.pages_sent as f64;
    let us = s.dirty_pages as f64 * bytes_per_page / rate * 1e6;
    Some(Downtime::Estimated(us.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window() {
        let t = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(2));
        assert_eq!(m.bytes_per_sec(), None);
        m.push(t, 0);
        assert_eq!(m.bytes_per_sec(), None);
        m.push(t + Duration::from_millis(400), 4_000_000);
        assert_eq!(m.bytes_per_sec(), None, "span below MIN_SPAN");
        for i in 5..=50u64 {
            m.push(t + Duration::from_millis(100 * i), i * 1_000_000);
        }
        // 1 MB per 100 ms, whatever the window keeps.
        let r = m.bytes_per_sec().unwrap();
        assert!((r - 10_000_000.0).abs() < 1.0, "{r}");
        // The window keeps about two seconds.
        assert!(m.samples.len() <= 22, "{}", m.samples.len());
    }

    #[test]
    fn rate_follows_a_slowdown() {
        let t = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(1));
        for i in 0..=20u64 {
            m.push(t + Duration::from_millis(100 * i), i * 1_000_000);
        }
        // Stalled for two seconds.
        for i in 21..=40u64 {
            m.push(t + Duration::from_millis(100 * i), 20_000_000);
        }
        assert_eq!(m.bytes_per_sec(), Some(0.0));
    }

    #[test]
    fn rate_resets_on_a_new_migration() {
        let t = Instant::now();
        let mut m = RateMeter::default();
        m.push(t, 5_000_000);
        m.push(t + Duration::from_secs(1), 0);
        assert_eq!(m.bytes_per_sec(), None);
    }

    fn precopy(round: u32, dirty: u64) -> StatusArgs {
        StatusArgs {
            state: State::Precopy,
            round,
            pages_sent: 1000,
            bytes_sent: 4_200_000,
            dirty_pages: dirty,
            ..StatusArgs::idle()
        }
    }

    #[test]
    fn downtime_estimate() {
        // 100 pages of 4200 bytes at 42 MB/s: 10 ms.
        let s = precopy(3, 100);
        assert_eq!(
            expected_downtime(&s, Some(42_000_000.0)),
            Some(Downtime::Estimated(10_000))
        );
        assert_eq!(expected_downtime(&s, None), None);
        assert_eq!(expected_downtime(&s, Some(0.0)), None);
        assert_eq!(expected_downtime(&precopy(1, 100), Some(1e6)), None);
        let mut k = precopy(3, 100);
        k.expected_downtime_us = 1234;
        assert_eq!(expected_downtime(&k, None), Some(Downtime::Kernel(1234)));
        let mut c = precopy(3, 100);
        c.state = State::Committing;
        assert_eq!(expected_downtime(&c, Some(1e6)), None);
    }
}
