// SPDX-License-Identifier: GPL-2.0

//! `selfmig status`: state, settings and counters of whichever module is
//! loaded, read from sysfs (no device access, so no root needed).

use super::fail;
use crate::cli::StatusOpts;
use crate::errno::ADMIN_GUIDE;
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::json::{self, LoaderStatus, SourceStatus, StatusReport, SCHEMA_VERSION};
use crate::report;
use crate::sysfs::{Module, Stats, Sysfs};

/// Runs `selfmig status`.
pub fn run(opts: &StatusOpts, sysfs: &Sysfs) -> ExitClass {
    let snap = snapshot(sysfs);
    let neither = snap.self_migrate.is_none() && snap.inflate_loader.is_none();
    if opts.json {
        println!("{}", json::to_line(&snap));
    } else {
        print!("{}", report::status(&snap));
    }
    if neither {
        return fail(
            CliError::new(
                ExitClass::Environment,
                "neither self_migrate nor inflate_loader is loaded",
            )
            .with_hint(format!(
                "`insmod self_migrate.ko` in the guest that moves, `insmod inflate_loader.ko` \
                 in the VM that receives it (see {ADMIN_GUIDE}, \"Loading\")"
            )),
        );
    }
    ExitClass::Success
}

/// A setting read from sysfs; `none` (unset) and unreadable are None.
fn setting(sysfs: &Sysfs, m: Module, attr: &str) -> Option<String> {
    sysfs.read(m, attr).ok().filter(|v| v != "none")
}

/// Reads both modules' state.
pub fn snapshot(sysfs: &Sysfs) -> StatusReport {
    let stats = |m| {
        sysfs
            .stats(m)
            .map(|s| json::stats_object(&s))
            .unwrap_or_else(|_| json::stats_object(&Stats::default()))
    };
    let self_migrate = sysfs.is_loaded(Module::SelfMigrate).then(|| {
        let m = Module::SelfMigrate;
        SourceStatus {
            state: setting(sysfs, m, "status"),
            target: setting(sysfs, m, "target"),
            max_downtime_ms: setting(sysfs, m, "max_downtime_ms").and_then(|v| v.parse().ok()),
            verify: setting(sysfs, m, "verify").map(|v| v == "1"),
            tracker: setting(sysfs, m, "tracker"),
            version: setting(sysfs, m, "version"),
            stats: stats(m),
        }
    });
    let inflate_loader = sysfs.is_loaded(Module::InflateLoader).then(|| {
        let m = Module::InflateLoader;
        LoaderStatus {
            state: setting(sysfs, m, "status"),
            listen: setting(sysfs, m, "listen"),
            stats: stats(m),
        }
    });
    StatusReport {
        schema_version: SCHEMA_VERSION,
        self_migrate,
        inflate_loader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_source() {
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        let empty = snapshot(&sysfs);
        assert!(empty.self_migrate.is_none() && empty.inflate_loader.is_none());

        let m = Module::SelfMigrate;
        std::fs::create_dir_all(sysfs.dir(m)).unwrap();
        for (attr, v) in [
            ("status", "precopy\n"),
            ("target", "10.77.0.3:7000\n"),
            ("max_downtime_ms", "50\n"),
            ("verify", "0\n"),
            ("tracker", "paging\n"),
            ("stats", "state: precopy\nround: 2\nlast_error: none\n"),
        ] {
            std::fs::write(sysfs.attr(m, attr), v).unwrap();
        }
        let s = snapshot(&sysfs).self_migrate.unwrap();
        assert_eq!(s.state.as_deref(), Some("precopy"));
        assert_eq!(s.target.as_deref(), Some("10.77.0.3:7000"));
        assert_eq!(s.max_downtime_ms, Some(50));
        assert_eq!(s.verify, Some(false));
        assert_eq!(s.version, None);
        assert_eq!(s.stats["round"], 2);
        // Kernel order is kept.
        let keys: Vec<&String> = s.stats.keys().collect();
        assert_eq!(keys, ["state", "round", "last_error"]);
    }

    #[test]
    fn unset_listen_is_null() {
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        let m = Module::InflateLoader;
        std::fs::create_dir_all(sysfs.dir(m)).unwrap();
        std::fs::write(sysfs.attr(m, "listen"), "none\n").unwrap();
        std::fs::write(sysfs.attr(m, "status"), "idle\n").unwrap();
        let l = snapshot(&sysfs).inflate_loader.unwrap();
        assert_eq!(l.listen, None);
        assert_eq!(l.state.as_deref(), Some("idle"));
        assert!(l.stats.is_empty());
    }
}
