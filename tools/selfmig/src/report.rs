// SPDX-License-Identifier: GPL-2.0

//! The reports people read: the end of `migrate` and the `status` snapshot.
//! Both are rendered from the same data as the JSON documents.

use crate::errno;
use crate::json::{LoaderStatus, MigrateReport, SourceStatus, StatusReport};
use crate::units;
use serde_json::{Map, Value};
use std::fmt::Write;

/// Appends `label  value` with the labels in one column.
fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<14}{value}");
}

/// The headline of a migrate report.
fn headline(r: &MigrateReport) -> String {
    let t = &r.target;
    match r.outcome {
        "migrated" => format!("Migrated to {t}: this guest now runs in the target VM."),
        "failed" => format!("Migration to {t} failed; this guest carries on here."),
        "aborted" => format!("Migration to {t} aborted; this guest carries on here."),
        "refused" if r.state.is_none() => format!("Migration to {t} refused; nothing started."),
        "refused" => format!("Migration to {t} refused; this guest carries on here."),
        _ => format!("Migration to {t} not started."),
    }
}

/// The report `migrate` prints at the end, without `--json`.
pub fn migrate(r: &MigrateReport) -> String {
    let mut out = headline(r);
    out.push('\n');
    if let Some(state) = r.state {
        row(&mut out, "state", state);
        row(&mut out, "rounds", r.rounds);
        let zero = match r.zero_pages {
            Some(z) => format!(" ({z} zero)"),
            None => String::new(),
        };
        row(&mut out, "pages sent", format!("{}{zero}", r.pages_sent));
        row(
            &mut out,
            "bytes sent",
            format!("{} ({} bytes)", units::mib(r.bytes_sent), r.bytes_sent),
        );
        if r.rounds >= 2 {
            row(&mut out, "last dirty", format!("{} pages", r.dirty_pages));
        }
        if r.outcome == "migrated" {
            row(
                &mut out,
                "downtime",
                format!(
                    "{} (target {} ms)",
                    units::us(r.downtime_us),
                    r.max_downtime_ms
                ),
            );
            if let Some(p) = &r.downtime_phases_us {
                row(
                    &mut out,
                    "  spent in",
                    format!(
                        "checkpoint {}, transfer {}, target {}, commit {}, jump {}, resume {}",
                        units::us(p.checkpoint),
                        units::us(p.transfer),
                        units::us(p.target),
                        units::us(p.commit),
                        units::us(p.jump),
                        units::us(p.resume)
                    ),
                );
            }
        }
        if r.total_ms > 0 {
            let avg = r.bytes_sent as f64 * 1000.0 / r.total_ms as f64;
            row(
                &mut out,
                "total time",
                format!(
                    "{} ({} on average)",
                    units::ms(r.total_ms),
                    units::mib_per_sec(avg)
                ),
            );
        }
    }
    row(
        &mut out,
        "tracker",
        format!(
            "{}, verify {}",
            match r.tracker_used.as_deref() {
                Some(used) if used != r.tracker.as_str() =>
                    format!("{used} ({} requested)", r.tracker.as_str()),
                _ => r.tracker.as_str().to_string(),
            },
            match (r.verify, r.verified_pages) {
                (true, Some(n)) => format!("on ({n} pages checked by the target)"),
                (true, None) => "on".to_string(),
                (false, _) => "off".to_string(),
            }
        ),
    );
    if let Some(e) = &r.error {
        let label = match e.errno {
            Some(n) => format!(" ({})", errno::label(n)),
            None => String::new(),
        };
        row(&mut out, "error", format!("{}{label}", e.message));
        if let Some(h) = &e.hint {
            row(&mut out, "next", h);
        }
    }
    out
}

/// Appends every `stats` entry, with byte counts and errnos spelled out.
fn stats_rows(out: &mut String, stats: &Map<String, Value>) {
    for (k, v) in stats {
        let shown = match (k.as_str(), v) {
            ("bytes_sent", Value::Number(n)) => {
                format!("{n} ({})", units::mib(n.as_u64().unwrap_or(0)))
            }
            ("last_errno", Value::Number(n)) if n.as_u64() != Some(0) => {
                let label = n
                    .as_i64()
                    .and_then(|e| i32::try_from(e).ok())
                    .map(errno::label)
                    .unwrap_or_default();
                format!("{n} ({label})")
            }
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        };
        row(out, k, shown);
    }
}

/// The `self_migrate` part of `status`.
fn source(out: &mut String, s: &SourceStatus) {
    let _ = writeln!(
        out,
        "self_migrate (this guest can migrate): {}",
        s.state.as_deref().unwrap_or("unknown")
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    row(
        out,
        "settings",
        format!(
            "target {}, max_downtime_ms {}, verify {}, tracker {}",
            opt(s.target.clone()),
            opt(s.max_downtime_ms.map(|v| v.to_string())),
            opt(s.verify.map(|v| u8::from(v).to_string())),
            opt(s.tracker.clone())
        ),
    );
    if let Some(v) = &s.version {
        row(out, "version", v);
    }
    stats_rows(out, &s.stats);
}

/// The `inflate_loader` part of `status`.
fn loader(out: &mut String, l: &LoaderStatus) {
    let _ = writeln!(
        out,
        "inflate_loader (this VM can receive a guest): {}",
        l.state.as_deref().unwrap_or("unknown")
    );
    row(out, "listen", l.listen.as_deref().unwrap_or("none"));
    stats_rows(out, &l.stats);
}

/// The report `status` prints, without `--json`.
pub fn status(r: &StatusReport) -> String {
    let mut out = String::new();
    if let Some(s) = &r.self_migrate {
        source(&mut out, s);
    }
    if let Some(l) = &r.inflate_loader {
        loader(&mut out, l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliError;
    use crate::exit::ExitClass;
    use crate::json::{stats_object, SCHEMA_VERSION};
    use crate::request::{StartRequest, Tracker};
    use crate::sysfs::Stats;
    use selfmig_proto::uapi::{Endpoint, State, StatusArgs};

    fn request() -> StartRequest {
        StartRequest {
            target: Endpoint {
                addr: [10, 77, 0, 3],
                port: 7000,
            },
            token: vec![1],
            max_downtime_ms: None,
            verify: false,
            tracker: Tracker::Hash,
            no_auto_converge: false,
            no_compress: false,
            no_rehearse: false,
        }
    }

    fn status(state: State) -> StatusArgs {
        StatusArgs {
            state,
            round: 4,
            pages_sent: 131_072,
            bytes_sent: 537_285_632,
            dirty_pages: 211,
            downtime_us: 42_117,
            total_ms: 8_250,
            ..StatusArgs::idle()
        }
    }

    #[test]
    fn migrated_report() {
        let r = MigrateReport::new(
            &request(),
            ExitClass::Success,
            Some(&status(State::Migrated)),
            Some(&Stats::parse(
                "zero_pages: 3012\ntracker_used: hash\ndowntime_checkpoint_us: 9000\n\
                 downtime_transfer_us: 6000\ndowntime_target_us: 12000\n\
                 downtime_commit_us: 17\ndowntime_jump_us: 5000\ndowntime_resume_us: 10100\n",
            )),
            None,
        );
        assert_eq!(
            migrate(&r),
            "Migrated to 10.77.0.3:7000: this guest now runs in the target VM.\n\
             \x20 state         migrated\n\
             \x20 rounds        5\n\
             \x20 pages sent    131072 (3012 zero)\n\
             \x20 bytes sent    512.4 MiB (537285632 bytes)\n\
             \x20 last dirty    211 pages\n\
             \x20 downtime      42.1 ms (target 50 ms)\n\
             \x20   spent in    checkpoint 9.0 ms, transfer 6.0 ms, target 12.0 ms, commit 0.0 ms, jump 5.0 ms, resume 10.1 ms\n\
             \x20 total time    8.250 s (62.1 MiB/s on average)\n\
             \x20 tracker       hash, verify off\n"
        );
    }

    #[test]
    fn failed_report_has_error_and_next_step() {
        let mut s = status(State::Failed);
        s.downtime_us = 0;
        let err =
            errno::migration_failure(false, 104, Some("connection reset"), 5, "10.77.0.3:7000");
        let r = MigrateReport::new(&request(), err.class, Some(&s), None, Some(&err));
        let text = migrate(&r);
        assert!(
            text.starts_with("Migration to 10.77.0.3:7000 failed; this guest carries on here.\n")
        );
        assert!(!text.contains("downtime"));
        assert!(text.contains("  pages sent    131072\n"));
        assert!(text.contains("  error         migration failed: connection reset (ECONNRESET)\n"));
        assert!(text.contains("  next          the connection to the target broke"));
    }

    #[test]
    fn not_started_report_has_no_counters() {
        let err = CliError::new(
            ExitClass::Refused,
            "start refused: a migration is already running",
        )
        .with_errno(16);
        let r = MigrateReport::new(&request(), err.class, None, None, Some(&err));
        assert_eq!(
            migrate(&r),
            "Migration to 10.77.0.3:7000 refused; nothing started.\n\
             \x20 tracker       hash, verify off\n\
             \x20 error         start refused: a migration is already running (EBUSY)\n"
        );
    }

    #[test]
    fn status_report() {
        let stats =
            Stats::parse("state: failed\nbytes_sent: 1048576\nlast_errno: 111\nlast_error: none\n");
        let r = StatusReport {
            schema_version: SCHEMA_VERSION,
            self_migrate: Some(SourceStatus {
                state: Some("failed".into()),
                target: None,
                max_downtime_ms: Some(50),
                verify: Some(false),
                tracker: Some("paging".into()),
                version: Some("wire 4 image 1 start_size 64 status_size 80".into()),
                stats: stats_object(&stats),
            }),
            inflate_loader: Some(LoaderStatus {
                state: Some("listening".into()),
                listen: Some("0.0.0.0:7000".into()),
                stats: Map::new(),
            }),
        };
        let text = super::status(&r);
        assert!(text.starts_with("self_migrate (this guest can migrate): failed\n"));
        assert!(text
            .contains("  settings      target -, max_downtime_ms 50, verify 0, tracker paging\n"));
        assert!(text.contains("  bytes_sent    1048576 (1.0 MiB)\n"));
        assert!(text.contains("  last_errno    111 (ECONNREFUSED)\n"));
        assert!(text.contains("inflate_loader (this VM can receive a guest): listening\n  listen        0.0.0.0:7000\n"));
    }
}
