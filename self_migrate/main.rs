// SPDX-License-Identifier: GPL-2.0

//! self_migrate: a running guest migrates itself to a fresh VM.
//!
//! This crate root only wires the parts together; see
//! `Documentation/selfmig/` for the design.

use kernel::c_str;
use kernel::prelude::*;

mod address_spaces;
mod ages;
mod announce;
#[path = "bindings_generated.rs"]
mod bindings;
mod channel;
mod checkpoint;
#[path = "../ksupport/clock.rs"]
mod clock;
#[path = "../ksupport/connect.rs"]
mod connect;
mod control;
mod cpu_context;
#[path = "../ksupport/crypto.rs"]
mod crypto;
#[path = "../ksupport/devices.rs"]
mod devices;
mod dma;
mod downtime;
#[path = "../ksupport/errno.rs"]
mod errno;
#[path = "../ksupport/failure.rs"]
mod failure;
mod fence;
#[path = "../ksupport/global.rs"]
mod global;
mod ioctl;
#[path = "../ksupport/kthread.rs"]
mod kthread;
mod live_console;
mod live_nic;
#[path = "../ksupport/lz4.rs"]
mod lz4;
#[path = "../ksupport/machine.rs"]
mod machine;
mod memmap;
mod migrate;
#[path = "../ksupport/miscdev.rs"]
mod miscdev;
#[path = "../ksupport/mmu.rs"]
mod mmu;
#[cfg(CONFIG_MMU_NOTIFIER)]
mod notifier;
mod pack;
#[path = "../ksupport/page_hash.rs"]
mod page_hash;
#[path = "../ksupport/pagetable.rs"]
mod pagetable;
mod paging;
#[path = "../ksupport/pm.rs"]
mod pm;
mod precopy;
#[path = "../ksupport/proto.rs"]
pub mod proto;
#[path = "../ksupport/refuse.rs"]
mod refuse;
#[path = "../ksupport/rehearsal.rs"]
mod rehearsal;
mod resent;
mod shim;
#[path = "../ksupport/socket.rs"]
mod socket;
#[path = "../ksupport/split.rs"]
mod split;
mod staging;
#[path = "../ksupport/sysfs.rs"]
mod sysfs;
mod sysfs_attrs;
#[path = "../ksupport/text_poke.rs"]
mod text_poke;
mod throttle;
mod tracker;
#[path = "../ksupport/tsc.rs"]
mod tsc;
mod uevent;
mod urgent;
mod verify;

module! {
    type: SelfMigrate,
    name: "self_migrate",
    author: "selfmig developers",
    description: "Live self-migration of a Linux guest to a fresh VM",
    license: "GPL",
}

/// The loaded module: its control surfaces and the state behind them.
///
/// Fields drop in order: the device and the sysfs directory go first, so no
/// callback can reach the control state once it is freed.
struct SelfMigrate {
    _dev: miscdev::Registration,
    _sysfs: sysfs::SysfsDir,
    _control: global::Published<control::Control>,
}

impl Drop for SelfMigrate {
    fn drop(&mut self) {
        // End any migration before the interfaces and the state go away.
        control::shutdown();
        uevent::detach();
    }
}

impl kernel::Module for SelfMigrate {
    fn init(module: &'static ThisModule) -> Result<Self> {
        crypto::self_test().map_err(|f| {
            pr_err!("refusing to load: crypto self-test failed: {}\n", f.reason);
            f.err
        })?;
        let control = control::publish()?;
        let sysfs = sysfs::SysfsDir::new(c_str!("self_migrate"), &sysfs_attrs::ATTRS)?;
        let dev = miscdev::Registration::new(c_str!("self_migrate"), module, ioctl::dispatch)?;
        uevent::attach(&dev);
        pr_info!("loaded; control in /sys/kernel/self_migrate and /dev/self_migrate\n");
        Ok(Self {
            _dev: dev,
            _sysfs: sysfs,
            _control: control,
        })
    }
}
