// SPDX-License-Identifier: GPL-2.0

//! After the image resumes on the target: make its network identity live
//! on the new NIC.
//!
//! The restored kernel keeps the source NIC's MAC address, but the target's
//! virtio-net device filters on its own. Setting the address again programs
//! the device (`VIRTIO_NET_CTRL_MAC_ADDR_SET`); a gratuitous ARP then moves
//! the address to the new port in every switch on the way.

use crate::bindings;
use crate::shim;
use kernel::prelude::*;

/// Highest interface index looked at.
const MAX_IFINDEX: i32 = 64;

/// Re-programs every non-loopback interface's MAC address and announces it.
pub(crate) fn announce() {
    for_each_interface(true);
}

/// Re-programs every non-loopback interface's MAC address into its device.
///
/// Needed after any device reset, not just on the target: a virtio-net
/// reset (the checkpoint's freeze and thaw) makes the device filter on its
/// own configured address again, and a guest that migrated here earlier
/// uses another one. The driver's restore path does not re-apply it.
pub(crate) fn reprogram() {
    for_each_interface(false);
}

/// Re-programs each interface's MAC address, and announces it if `notify`.
fn for_each_interface(notify: bool) {
    for ifindex in 1..=MAX_IFINDEX {
        // SAFETY: `init_net` lives forever; a non-null result holds a
        // reference we drop below.
        let dev = unsafe {
            bindings::dev_get_by_index(core::ptr::addr_of_mut!(bindings::init_net), ifindex)
        };
        if dev.is_null() {
            continue;
        }
        // SAFETY: `dev` is a live, referenced net device.
        let d = unsafe { &*dev };
        if d.flags & bindings::net_device_flags_IFF_LOOPBACK != 0 || d.addr_len as usize > 14 {
            shim::dev_put(dev);
            continue;
        }
        let mut sa = bindings::sockaddr {
            sa_family: d.type_,
            ..Default::default()
        };
        // SAFETY: `dev_addr` holds `addr_len` (at most 14, checked above)
        // bytes; `sa_data` is the 14 bytes after the 2-byte family.
        unsafe {
            let sa_data = (&mut sa as *mut bindings::sockaddr).cast::<u8>().add(2);
            core::ptr::copy_nonoverlapping(d.dev_addr, sa_data, d.addr_len as usize)
        };
        // The driver's own hook, not `dev_set_mac_address()`: that one
        // skips an address equal to the current one, and the point is to
        // tell the new device.
        // SAFETY: `dev` is live and its ops table is static; the hook
        // requires the RTNL.
        let ret = unsafe {
            match (*d.netdev_ops).ndo_set_mac_address {
                Some(set) => {
                    bindings::rtnl_lock();
                    let ret = set(dev, (&mut sa as *mut bindings::sockaddr).cast());
                    bindings::rtnl_unlock();
                    ret
                }
                None => 0,
            }
        };
        if ret != 0 {
            pr_warn!(
                "interface {}: cannot re-program the MAC address (errno {})\n",
                ifindex,
                -ret
            );
        }
        if notify {
            // SAFETY: `dev` is live; the call takes the RTNL itself.
            unsafe { bindings::netdev_notify_peers(dev) };
        }
        shim::dev_put(dev);
    }
}
