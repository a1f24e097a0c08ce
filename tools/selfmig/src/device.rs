// SPDX-License-Identifier: GPL-2.0

//! `/dev/self_migrate`: the START, STATUS and ABORT ioctls.
//!
//! The ABI (`struct selfmig_start`, `struct selfmig_status`, command
//! numbers) is `proto`'s; structures cross the boundary as byte arrays,
//! serialised by `proto`.

use crate::errno::{self, ADMIN_GUIDE};
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::request::StartRequest;
use crate::sysfs::Module;
use selfmig_proto::uapi::{StatusArgs, IOC_ABORT, IOC_START, IOC_STATUS};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Where the device node is unless `--dev` says otherwise.
pub const DEFAULT_PATH: &str = "/dev/self_migrate";

/// Why a STATUS could not be read.
#[derive(Debug)]
pub enum StatusError {
    /// The ioctl failed.
    Os(io::Error),
    /// The module reported a state this tool does not know.
    UnknownState(u32),
}

impl StatusError {
    /// The error shown to the user.
    pub fn to_cli(&self) -> CliError {
        match self {
            StatusError::Os(e) => {
                let n = e.raw_os_error().unwrap_or(libc::EIO);
                CliError::new(
                    ExitClass::Failed,
                    format!("reading the migration status: {}", errno::describe(n)),
                )
                .with_errno(n)
                .with_hint("`selfmig status` reads it from sysfs; dmesg may say more")
            }
            StatusError::UnknownState(s) => CliError::new(
                ExitClass::Environment,
                format!("the module reports state {s}, which this selfmig does not know"),
            )
            .with_hint("build selfmig from the same tree as self_migrate.ko"),
        }
    }
}

/// The operations on a migration, so the driving loop can be tested
/// without the device.
pub trait Control {
    /// `SELFMIG_IOC_START`; the error carries the kernel's errno.
    fn start(&self, req: &StartRequest) -> io::Result<()>;
    /// `SELFMIG_IOC_STATUS`.
    fn status(&self) -> Result<StatusArgs, StatusError>;
    /// `SELFMIG_IOC_ABORT`; the error carries the kernel's errno.
    fn abort(&self) -> io::Result<()>;
}

/// The open `/dev/self_migrate`.
#[derive(Debug)]
pub struct Device {
    file: File,
}

impl Device {
    /// Opens the device node at `path`. `loaded` tells whether
    /// `self_migrate`'s sysfs directory exists, to explain a missing node.
    pub fn open(path: &Path, loaded: bool) -> Result<Self, CliError> {
        match File::options().read(true).write(true).open(path) {
            Ok(file) => Ok(Self { file }),
            Err(e) => Err(open_error(path, &e, loaded)),
        }
    }

    /// Issues ioctl `cmd` with `arg`.
    fn ioctl(&self, cmd: u32, arg: *mut libc::c_void) -> io::Result<()> {
        // SAFETY: `self.file` is an open descriptor; every caller passes a
        // command whose size field matches the buffer behind `arg` (or a
        // null pointer for a command without argument), and that buffer
        // outlives the call.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), cmd as libc::Ioctl, arg) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Control for Device {
    fn start(&self, req: &StartRequest) -> io::Result<()> {
        // `args.token_ptr` points into `req.token`, borrowed for this call.
        let mut raw = req.args().to_bytes();
        self.ioctl(IOC_START, raw.as_mut_ptr().cast())
    }

    fn status(&self) -> Result<StatusArgs, StatusError> {
        let mut raw = [0u8; StatusArgs::SIZE];
        self.ioctl(IOC_STATUS, raw.as_mut_ptr().cast())
            .map_err(StatusError::Os)?;
        StatusArgs::from_bytes(&raw).ok_or_else(|| {
            StatusError::UnknownState(u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]))
        })
    }

    fn abort(&self) -> io::Result<()> {
        self.ioctl(IOC_ABORT, std::ptr::null_mut())
    }
}

/// Explains why the device node at `path` could not be opened.
pub fn open_error(path: &Path, e: &io::Error, loaded: bool) -> CliError {
    let n = e.raw_os_error().unwrap_or(libc::EIO);
    let shown = path.display();
    match n {
        libc::ENOENT | libc::ENXIO | libc::ENODEV if !loaded => Module::SelfMigrate.not_loaded(),
        libc::ENOENT => CliError::new(
            ExitClass::Environment,
            format!("{shown} does not exist although self_migrate is loaded"),
        )
        .with_errno(n)
        .with_hint(
            "mount devtmpfs (`mount -t devtmpfs devtmpfs /dev`) or pass --dev with the node's path",
        ),
        libc::EACCES | libc::EPERM => CliError::new(
            ExitClass::Environment,
            format!("cannot open {shown}: permission denied (the node is mode 0600)"),
        )
        .with_errno(n)
        .with_hint("run selfmig as root"),
        _ => CliError::new(
            ExitClass::Environment,
            format!("cannot open {shown}: {}", errno::describe(n)),
        )
        .with_errno(n)
        .with_hint(format!(
            "check that self_migrate.ko is loaded and its node is {DEFAULT_PATH}; see {ADMIN_GUIDE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(n: i32) -> io::Error {
        io::Error::from_raw_os_error(n)
    }

    #[test]
    fn not_loaded_says_insmod() {
        let e = open_error(Path::new(DEFAULT_PATH), &err(libc::ENOENT), false);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.message.contains("self_migrate is not loaded"));
        assert!(e.hint.unwrap().contains("insmod self_migrate.ko"));
    }

    #[test]
    fn missing_node_says_devtmpfs() {
        let e = open_error(Path::new(DEFAULT_PATH), &err(libc::ENOENT), true);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.hint.unwrap().contains("devtmpfs"));
    }

    #[test]
    fn permission_says_root() {
        let e = open_error(Path::new(DEFAULT_PATH), &err(libc::EACCES), true);
        assert_eq!(e.class, ExitClass::Environment);
        assert_eq!(e.errno, Some(libc::EACCES));
        assert_eq!(e.hint.as_deref(), Some("run selfmig as root"));
    }

    #[test]
    fn ioctl_on_a_regular_file_is_enotty() {
        // A real ioctl, on a descriptor that is not the device.
        let f = tempfile::NamedTempFile::new().unwrap();
        let dev = Device::open(f.path(), true).unwrap();
        let e = dev.abort().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        match dev.status() {
            Err(StatusError::Os(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn status_errors() {
        let e = StatusError::UnknownState(42).to_cli();
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.message.contains("42"));
        let e = StatusError::Os(err(libc::EFAULT)).to_cli();
        assert_eq!(e.class, ExitClass::Failed);
        assert_eq!(e.errno, Some(libc::EFAULT));
    }
}
