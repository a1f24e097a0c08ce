// SPDX-License-Identifier: GPL-2.0

//! inflate_loader: admits an incoming self-migrating guest, inflates its
//! image into this VM and resumes it.
//!
//! This crate root only wires the parts together; see
//! `Documentation/selfmig/` for the design.

use kernel::c_str;
use kernel::prelude::*;

#[path = "bindings_generated.rs"]
mod bindings;
mod bitmap;
#[path = "../ksupport/clock.rs"]
mod clock;
mod control;
#[path = "../ksupport/crypto.rs"]
mod crypto;
#[path = "../ksupport/devices.rs"]
mod devices;
#[path = "../ksupport/errno.rs"]
mod errno;
#[path = "../ksupport/failure.rs"]
mod failure;
#[path = "../ksupport/global.rs"]
mod global;
mod image;
#[path = "../ksupport/kthread.rs"]
mod kthread;
#[path = "../ksupport/listener.rs"]
mod listener;
#[path = "../ksupport/lz4.rs"]
mod lz4;
#[path = "../ksupport/machine.rs"]
mod machine;
#[path = "../ksupport/mmu.rs"]
mod mmu;
#[path = "../ksupport/page_hash.rs"]
mod page_hash;
#[path = "../ksupport/pagetable.rs"]
mod pagetable;
#[path = "../ksupport/pm.rs"]
mod pm;
#[path = "../ksupport/proto.rs"]
pub mod proto;
mod quiesce;
mod receiver;
#[path = "../ksupport/refuse.rs"]
mod refuse;
#[path = "../ksupport/rehearsal.rs"]
mod rehearsal;
mod relocate;
mod restore;
#[path = "../ksupport/socket.rs"]
mod socket;
#[path = "../ksupport/split.rs"]
mod split;
#[path = "../ksupport/sysfs.rs"]
mod sysfs;
mod sysfs_attrs;
#[path = "../ksupport/text_poke.rs"]
mod text_poke;
mod trampoline;
#[path = "../ksupport/tsc.rs"]
mod tsc;
mod unwritten;
mod verify;

module! {
    type: InflateLoader,
    name: "inflate_loader",
    author: "selfmig developers",
    description: "Target-side loader for self-migrating guests",
    license: "GPL",
}

/// The loaded module: its control surface and the state behind it.
///
/// Fields drop in order: the sysfs directory goes first, so no callback can
/// reach the control state once it is freed.
struct InflateLoader {
    _sysfs: sysfs::SysfsDir,
    _control: global::Published<control::Control>,
}

impl Drop for InflateLoader {
    fn drop(&mut self) {
        // Stop the receiver before the interface and the state go away.
        control::shutdown();
    }
}

impl kernel::Module for InflateLoader {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        crypto::self_test().map_err(|f| {
            pr_err!("refusing to load: crypto self-test failed: {}\n", f.reason);
            f.err
        })?;
        let control = control::publish()?;
        let sysfs = sysfs::SysfsDir::new(c_str!("inflate_loader"), &sysfs_attrs::ATTRS)?;
        pr_info!("loaded; control in /sys/kernel/inflate_loader\n");
        Ok(Self {
            _sysfs: sysfs,
            _control: control,
        })
    }
}
