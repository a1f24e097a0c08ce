// SPDX-License-Identifier: GPL-2.0

//! The modules' sysfs directories: which module is loaded, reading `status`,
//! `stats` and settings, writing settings.
//!
//! The attributes are described in `Documentation/ABI/testing/` as
//! `sysfs-kernel-self_migrate` and `sysfs-kernel-inflate_loader`.

use crate::errno::ADMIN_GUIDE;
use crate::error::CliError;
use crate::exit::ExitClass;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where sysfs is mounted unless `--sysfs` says otherwise.
pub const DEFAULT_ROOT: &str = "/sys";

/// One of the two modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `self_migrate.ko`, in the guest that moves.
    SelfMigrate,
    /// `inflate_loader.ko`, in the VM that receives a guest.
    InflateLoader,
}

impl Module {
    /// The module's name, as `lsmod` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Module::SelfMigrate => "self_migrate",
            Module::InflateLoader => "inflate_loader",
        }
    }

    /// Its directory relative to the sysfs root.
    fn rel_dir(self) -> &'static str {
        match self {
            Module::SelfMigrate => "kernel/self_migrate",
            Module::InflateLoader => "kernel/inflate_loader",
        }
    }

    /// The error for "this module is not loaded", with how to load it.
    pub fn not_loaded(self) -> CliError {
        let side = match self {
            Module::SelfMigrate => "the guest that moves",
            Module::InflateLoader => "the VM that receives the guest",
        };
        CliError::new(
            ExitClass::Environment,
            format!("{} is not loaded", self.name()),
        )
        .with_errno(libc::ENOENT)
        .with_hint(format!(
            "load it in {side}: `insmod {}.ko` (see {ADMIN_GUIDE}, \"Loading\")",
            self.name()
        ))
    }
}

/// A sysfs mount.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The sysfs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of `m`.
    pub fn dir(&self, m: Module) -> PathBuf {
        self.root.join(m.rel_dir())
    }

    /// The path of attribute `attr` of `m`.
    pub fn attr(&self, m: Module, attr: &str) -> PathBuf {
        self.dir(m).join(attr)
    }

    /// Whether `m` is loaded (its directory exists).
    pub fn is_loaded(&self, m: Module) -> bool {
        self.dir(m).is_dir()
    }

    /// Fails with [`Module::not_loaded`] unless `m` is loaded.
    pub fn require(&self, m: Module) -> Result<(), CliError> {
        if self.is_loaded(m) {
            Ok(())
        } else {
            Err(m.not_loaded())
        }
    }

    /// Reads attribute `attr` of `m`, without surrounding whitespace.
    pub fn read(&self, m: Module, attr: &str) -> io::Result<String> {
        Ok(std::fs::read_to_string(self.attr(m, attr))?
            .trim()
            .to_string())
    }

    /// Reads and parses `stats` of `m`.
    pub fn stats(&self, m: Module) -> io::Result<Stats> {
        Ok(Stats::parse(&std::fs::read_to_string(
            self.attr(m, "stats"),
        )?))
    }

    /// Writes `value` and a newline to attribute `attr` of `m` in one
    /// `write()`, as `echo value > attr` does. The attribute must exist.
    pub fn write(&self, m: Module, attr: &str, value: &str) -> io::Result<()> {
        write_attr(&self.attr(m, attr), value)
    }
}

/// Writes `value` and a newline to an existing file in one `write()`.
fn write_attr(path: &Path, value: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    let line = format!("{value}\n");
    let n = f.write(line.as_bytes())?;
    if n != line.len() {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

/// The `key: value` lines of a `stats` attribute, in their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    entries: Vec<(String, String)>,
}

impl Stats {
    /// Parses `key: value` lines; lines without a colon are skipped. The
    /// value is everything after the first colon, trimmed.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        Self { entries }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a decimal number.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    /// Every entry, in the module's order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

/// The ABI versions in `self_migrate/version`:
/// `wire W image I start_size S status_size T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiVersion {
    /// Wire format version.
    pub wire: u32,
    /// Image format version.
    pub image: u32,
    /// `sizeof(struct selfmig_start)`.
    pub start_size: usize,
    /// `sizeof(struct selfmig_status)`.
    pub status_size: usize,
}

impl AbiVersion {
    /// The versions this tool was built with (from `proto`).
    pub fn ours() -> Self {
        Self {
            wire: u32::from(selfmig_proto::wire::VERSION),
            image: selfmig_proto::machine::IMAGE_VERSION,
            start_size: selfmig_proto::uapi::StartArgs::SIZE,
            status_size: selfmig_proto::uapi::StatusArgs::SIZE,
        }
    }

    /// Parses the `version` attribute.
    pub fn parse(text: &str) -> Option<Self> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let value = |name: &str| -> Option<u64> {
            let i = words.iter().position(|w| *w == name)?;
            words.get(i + 1)?.parse().ok()
        };
        Some(Self {
            wire: u32::try_from(value("wire")?).ok()?,
            image: u32::try_from(value("image")?).ok()?,
            start_size: usize::try_from(value("start_size")?).ok()?,
            status_size: usize::try_from(value("status_size")?).ok()?,
        })
    }
}

impl std::fmt::Display for AbiVersion {
    /// The same format as the `version` attribute.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wire {} image {} start_size {} status_size {}",
            self.wire, self.image, self.start_size, self.status_size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "state: failed\nround: 3\npages_sent: 1200\n\
                          last_errno: 104\nlast_error: target refused: RAM map differs\n";

    #[test]
    fn stats_parse() {
        let s = Stats::parse(SAMPLE);
        assert_eq!(s.get("state"), Some("failed"));
        assert_eq!(s.get_u64("round"), Some(3));
        assert_eq!(s.get_u64("pages_sent"), Some(1200));
        assert_eq!(s.get("last_error"), Some("target refused: RAM map differs"));
        assert_eq!(s.get_u64("last_error"), None);
        assert_eq!(s.get("missing"), None);
        assert_eq!(s.entries().len(), 5);
        assert_eq!(Stats::parse("junk\n\n: x\n").entries().len(), 0);
    }

    #[test]
    fn version_roundtrip() {
        let ours = AbiVersion::ours();
        assert_eq!(ours.start_size, 64);
        assert_eq!(ours.status_size, 80);
        assert_eq!(AbiVersion::parse(&format!("{ours}\n")), Some(ours));
        assert_eq!(AbiVersion::parse("wire 1 image"), None);
    }

    #[test]
    fn modules_in_a_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let sys = Sysfs::new(root.path());
        assert!(!sys.is_loaded(Module::SelfMigrate));
        let e = sys.require(Module::InflateLoader).unwrap_err();
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.hint.unwrap().contains("insmod inflate_loader.ko"));

        std::fs::create_dir_all(sys.dir(Module::InflateLoader)).unwrap();
        assert!(sys.is_loaded(Module::InflateLoader));
        std::fs::write(sys.attr(Module::InflateLoader, "status"), "idle\n").unwrap();
        std::fs::write(sys.attr(Module::InflateLoader, "stats"), SAMPLE).unwrap();
        std::fs::write(sys.attr(Module::InflateLoader, "listen"), "none\n").unwrap();
        assert_eq!(sys.read(Module::InflateLoader, "status").unwrap(), "idle");
        assert_eq!(
            sys.stats(Module::InflateLoader).unwrap().get_u64("round"),
            Some(3)
        );
        sys.write(Module::InflateLoader, "listen", "0.0.0.0:7000")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(sys.attr(Module::InflateLoader, "listen")).unwrap(),
            "0.0.0.0:7000\n"
        );
        // Attributes are never created.
        let e = sys.write(Module::InflateLoader, "nope", "1").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
