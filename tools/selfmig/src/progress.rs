// SPDX-License-Identifier: GPL-2.0

//! The live progress display of `migrate`, on stderr.
//!
//! On a terminal: one line redrawn in place (an `indicatif` spinner). Not on
//! a terminal (a log, a serial console captured to a file): a plain line
//! every second and at each change of state or round. Off with
//! `--no-progress`.

use crate::rate::{self, Downtime, RateMeter};
use crate::units;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use selfmig_proto::uapi::{State, StatusArgs};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often plain lines are printed when nothing changes.
pub const LINE_EVERY: Duration = Duration::from_secs(1);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A line redrawn in place.
    Bar,
    /// Plain lines.
    Lines,
    /// Nothing.
    Off,
}

impl Mode {
    /// The mode for this process: off if asked, a bar if stderr is a
    /// terminal, else plain lines.
    pub fn choose(no_progress: bool) -> Self {
        if no_progress {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// One sample's worth of figures, as the progress line shows them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Time since the migration started.
    pub elapsed: Duration,
    /// The module's status.
    pub status: StatusArgs,
    /// Zero pages from `stats`, if readable.
    pub zero_pages: Option<u64>,
    /// Current bandwidth in bytes per second.
    pub bytes_per_sec: Option<f64>,
    /// Downtime to expect if the guest stopped now.
    pub downtime: Option<Downtime>,
}

/// The progress line for `snap`, e.g.
/// `[0:07] precopy round 3: 412.3 MiB, 105534 pages (912 zero), 2113 dirty, 58.2 MiB/s, downtime ~36.0 ms`.
pub fn line(snap: &Snapshot) -> String {
    let s = &snap.status;
    let mut out = format!("[{}] {}", units::clock(snap.elapsed), s.state.as_str());
    if s.state == State::Precopy {
        out += &format!(" round {}", s.round);
    }
    if s.state == State::Connecting || (s.pages_sent == 0 && !s.state.is_running()) {
        return out;
    }
    out += &format!(": {}, {} pages", units::mib(s.bytes_sent), s.pages_sent);
    if let Some(z) = snap.zero_pages.filter(|&z| z > 0) {
        out += &format!(" ({z} zero)");
    }
    if s.round >= 2 {
        out += &format!(", {} dirty", s.dirty_pages);
    }
    if let Some(r) = snap.bytes_per_sec {
        out += &format!(", {}", units::mib_per_sec(r));
    }
    match snap.downtime {
        Some(Downtime::Kernel(us)) => out += &format!(", downtime {}", units::us(us)),
        Some(Downtime::Estimated(us)) => out += &format!(", downtime ~{}", units::us(us)),
        None => {}
    }
    out
}

/// The progress display of one migration.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    started: Instant,
    meter: RateMeter,
    /// When the last plain line was printed, and the state and round then.
    last_line: Option<(Instant, State, u32)>,
}

impl Progress {
    /// A display in `mode` for a migration started at `started`.
    pub fn new(mode: Mode, started: Instant) -> Self {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // The template is a constant known to parse.
            let style =
                ProgressStyle::with_template("{spinner} {msg}").expect("valid progress template");
            bar.set_style(style);
            bar
        });
        Self {
            mode,
            bar,
            started,
            meter: RateMeter::default(),
            last_line: None,
        }
    }

    /// Records a status read at `now` and shows it.
    pub fn update(&mut self, now: Instant, status: &StatusArgs, zero_pages: Option<u64>) {
        self.meter.push(now, status.bytes_sent);
        let bytes_per_sec = self.meter.bytes_per_sec();
        let snap = Snapshot {
            elapsed: now.saturating_duration_since(self.started),
            status: *status,
            zero_pages,
            bytes_per_sec,
            downtime: rate::expected_downtime(status, bytes_per_sec),
        };
        match self.mode {
            Mode::Off => {}
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_message(line(&snap));
                    bar.tick();
                }
            }
            Mode::Lines => {
                let due = match self.last_line {
                    None => true,
                    Some((t, state, round)) => {
                        state != status.state
                            || round != status.round
                            || now.saturating_duration_since(t) >= LINE_EVERY
                    }
                };
                if due {
                    eprintln!("selfmig: {}", line(&snap));
                    self.last_line = Some((now, status.state, status.round));
                }
            }
        }
    }

    /// Prints a message without garbling the progress line.
    pub fn say(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("selfmig: {msg}")),
            None => eprintln!("selfmig: {msg}"),
        }
    }

    /// Removes the progress line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(state: State, round: u32) -> Snapshot {
        Snapshot {
            elapsed: Duration::from_secs(7),
            status: StatusArgs {
                state,
                round,
                pages_sent: 105_534,
                bytes_sent: 432_329_523,
                dirty_pages: 2113,
                ..StatusArgs::idle()
            },
            zero_pages: Some(912),
            bytes_per_sec: Some(61_027_123.0),
            downtime: Some(Downtime::Estimated(36_012)),
        }
    }

    #[test]
    fn precopy_line() {
        assert_eq!(
            line(&snap(State::Precopy, 3)),
            "[0:07] precopy round 3: 412.3 MiB, 105534 pages (912 zero), 2113 dirty, \
             58.2 MiB/s, downtime ~36.0 ms"
        );
    }

    #[test]
    fn first_round_has_no_dirty_count() {
        let mut s = snap(State::Precopy, 1);
        s.downtime = None;
        s.zero_pages = None;
        assert_eq!(
            line(&s),
            "[0:07] precopy round 1: 412.3 MiB, 105534 pages, 58.2 MiB/s"
        );
    }

    #[test]
    fn kernel_downtime_is_not_marked_as_estimate() {
        let mut s = snap(State::Precopy, 3);
        s.downtime = Some(Downtime::Kernel(5000));
        assert!(line(&s).ends_with(", downtime 5.0 ms"));
    }

    #[test]
    fn connecting_line() {
        assert_eq!(line(&snap(State::Connecting, 0)), "[0:07] connecting");
    }

    #[test]
    fn committing_line() {
        let mut s = snap(State::Committing, 4);
        s.downtime = None;
        assert_eq!(
            line(&s),
            "[0:07] committing: 412.3 MiB, 105534 pages (912 zero), 2113 dirty, 58.2 MiB/s"
        );
    }

    #[test]
    fn off_prints_nothing_and_keeps_measuring() {
        let t = Instant::now();
        let mut p = Progress::new(Mode::Off, t);
        let s = snap(State::Precopy, 2).status;
        p.update(t, &s, None);
        p.update(t + Duration::from_secs(1), &s, None);
        p.finish();
        assert_eq!(p.meter.bytes_per_sec(), Some(0.0));
    }
}
