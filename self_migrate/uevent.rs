// SPDX-License-Identifier: GPL-2.0

//! Telling user space that a migration ended: a `KOBJ_CHANGE` uevent on
//! the `/dev/self_migrate` device, with `SELFMIG_STATE` (migrated, failed
//! or aborted), `SELFMIG_ERRNO`, `SELFMIG_DOWNTIME_US` and
//! `SELFMIG_TOTAL_MS`. On success it comes from the target: the guest that
//! receives it has just moved.

use crate::bindings;
use crate::miscdev;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::fmt;
use kernel::prelude::*;
use kernel::str::CString;

/// The device events are sent on; null when there is none.
static DEVICE: AtomicPtr<bindings::device> = AtomicPtr::new(null_mut());

/// Sends events on `dev`'s device from now on.
pub(crate) fn attach(dev: &miscdev::Registration) {
    DEVICE.store(dev.device(), Ordering::Release);
}

/// Stops sending events; called before the device goes away, once no
/// migration thread runs.
pub(crate) fn detach() {
    DEVICE.store(null_mut(), Ordering::Release);
}

/// Announces the end of a migration.
pub(crate) fn migration_ended(state: &str, errno: u32, downtime_us: u64, total_ms: u64) {
    let dev = DEVICE.load(Ordering::Acquire);
    if dev.is_null() {
        return;
    }
    let vars = [
        CString::try_from_fmt(fmt!("SELFMIG_STATE={state}")),
        CString::try_from_fmt(fmt!("SELFMIG_ERRNO={errno}")),
        CString::try_from_fmt(fmt!("SELFMIG_DOWNTIME_US={downtime_us}")),
        CString::try_from_fmt(fmt!("SELFMIG_TOTAL_MS={total_ms}")),
    ];
    let mut envp = [null_mut(); 5];
    for (slot, var) in envp.iter_mut().zip(vars.iter()) {
        match var {
            Ok(s) => *slot = s.as_char_ptr().cast_mut(),
            Err(_) => {
                pr_warn!("no memory for the migration-ended uevent\n");
                return;
            }
        }
    }
    // SAFETY: `dev` is the registered misc device (`attach`; `detach` runs
    // before it is deregistered and only once no migration thread runs);
    // `envp` is a null-terminated array of NUL-terminated strings that
    // outlive the call, which only reads them.
    let ret = unsafe {
        bindings::kobject_uevent_env(
            &mut (*dev).kobj,
            bindings::kobject_action_KOBJ_CHANGE,
            envp.as_mut_ptr(),
        )
    };
    if ret != 0 {
        pr_warn!("migration-ended uevent not sent (errno {})\n", -ret);
    }
}
