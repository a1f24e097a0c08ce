// SPDX-License-Identifier: GPL-2.0

//! `/dev/self_migrate` ioctls (ABI in `proto/src/uapi.rs`).
//!
//! User memory is copied into byte arrays and decoded field by field; the
//! decoded request then takes the same path as a sysfs `start`.

use crate::control::{self, Request, Tracker};
use crate::proto::uapi::{self, ControlError, StartArgs, StatusArgs};
use crate::refuse::refuse;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// Checks that `cmd` is exactly `want`; a same-numbered command with another
/// size is a structure-size mismatch, anything else an unknown command.
fn expect_cmd(op: &str, cmd: u32, want: u32) -> Result {
    if cmd == want {
        return Ok(());
    }
    let (_, _, size) = uapi::ioc_decode(cmd);
    let (_, _, want_size) = uapi::ioc_decode(want);
    let e = if size != want_size {
        ControlError::BadStructSize
    } else {
        ControlError::UnknownCommand
    };
    Err(refuse(op, e))
}

/// `SELFMIG_IOC_START`.
fn start(cmd: u32, arg: usize) -> Result<isize> {
    const OP: &str = "ioctl START";
    expect_cmd(OP, cmd, uapi::IOC_START)?;
    let mut raw = [0u8; StartArgs::SIZE];
    UserSlice::new(arg, StartArgs::SIZE)
        .reader()
        .read_slice(&mut raw)
        .map_err(|_| refuse(OP, ControlError::BadUserPointer))?;
    let args = StartArgs::from_bytes(&raw);
    args.validate().map_err(|e| refuse(OP, e))?;
    let len = args.token_len as usize;
    let mut token = KVec::from_elem(0u8, len, GFP_KERNEL)?;
    let ptr =
        usize::try_from(args.token_ptr).map_err(|_| refuse(OP, ControlError::BadUserPointer))?;
    UserSlice::new(ptr, len)
        .reader()
        .read_slice(&mut token)
        .map_err(|_| refuse(OP, ControlError::BadUserPointer))?;
    let req = Request {
        target: args.target,
        token,
        max_downtime_ms: if args.max_downtime_ms == 0 {
            uapi::DEFAULT_MAX_DOWNTIME_MS
        } else {
            args.max_downtime_ms
        },
        verify: args.flags & uapi::START_VERIFY != 0,
        tracker: if args.flags & uapi::START_TRACKER_HASH != 0 {
            Tracker::Hash
        } else {
            Tracker::Paging
        },
        auto_converge: args.flags & uapi::START_NO_AUTO_CONVERGE == 0,
        compress: args.flags & uapi::START_NO_COMPRESS == 0,
        rehearse: args.flags & uapi::START_NO_REHEARSE == 0,
    };
    control::start(OP, req)?;
    Ok(0)
}

/// `SELFMIG_IOC_STATUS`.
fn status(cmd: u32, arg: usize) -> Result<isize> {
    const OP: &str = "ioctl STATUS";
    expect_cmd(OP, cmd, uapi::IOC_STATUS)?;
    let (s, _, _) = control::status()?;
    UserSlice::new(arg, StatusArgs::SIZE)
        .writer()
        .write_slice(&s.to_bytes())
        .map_err(|_| refuse(OP, ControlError::BadUserPointer))?;
    Ok(0)
}

/// `SELFMIG_IOC_ABORT`.
fn abort(cmd: u32, _arg: usize) -> Result<isize> {
    const OP: &str = "ioctl ABORT";
    expect_cmd(OP, cmd, uapi::IOC_ABORT)?;
    control::abort(OP)?;
    Ok(0)
}

/// Entry point for every ioctl on `/dev/self_migrate`.
pub(crate) fn dispatch(cmd: u32, arg: usize) -> Result<isize> {
    let (ty, nr, _) = uapi::ioc_decode(cmd);
    if ty != uapi::IOC_MAGIC {
        return Err(refuse("ioctl", ControlError::UnknownCommand));
    }
    match nr {
        uapi::NR_START => start(cmd, arg),
        uapi::NR_STATUS => status(cmd, arg),
        uapi::NR_ABORT => abort(cmd, arg),
        _ => Err(refuse("ioctl", ControlError::UnknownCommand)),
    }
}
