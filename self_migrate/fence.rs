// SPDX-License-Identifier: GPL-2.0

//! The output fence: from the checkpoint until the migration ends, this
//! guest sends nothing but the migration stream.
//!
//! After the checkpoint the source keeps running, but the target will resume
//! from the checkpoint. Anything the source said after it (a TCP
//! acknowledgement, a reply) would be something the target does not
//! remember, so a netfilter hook on `NF_INET_LOCAL_OUT` drops every packet
//! not sent by the migration socket. Peers retransmit, and the target
//! answers. Before commit a failure removes the fence and the source simply
//! carries on, having lost nothing but some retransmission delay.

use crate::bindings;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::prelude::*;

/// Packets dropped by fences since the module was loaded.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Packets the fence has dropped so far.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// What the hook reads (its `priv_`).
struct Gate {
    /// The migration socket, whose packets always pass.
    sk: *mut bindings::sock,
    /// Set once the fence no longer holds anything back.
    open: AtomicBool,
}

/// Lets only packets of the migration socket through, or every packet once
/// the gate is open.
///
/// # Safety
///
/// Called by netfilter with a live `skb` and the `Gate` the hook was
/// registered with as `priv_`.
unsafe extern "C" fn fence_hook(
    priv_: *mut c_void,
    skb: *mut bindings::sk_buff,
    _state: *const bindings::nf_hook_state,
) -> u32 {
    // SAFETY: `priv_` is the fence's `Gate`, freed only after the hook is
    // unregistered (see `Drop for Fence`).
    let gate = unsafe { &*priv_.cast::<Gate>() };
    // SAFETY: `skb` is live for the duration of the hook.
    let sk = unsafe { (*skb).sk };
    if sk == gate.sk || gate.open.load(Ordering::Relaxed) {
        bindings::NF_ACCEPT
    } else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        bindings::NF_DROP
    }
}

/// An installed fence; removed on drop.
///
/// ARP is not fenced (that needs `CONFIG_NETFILTER_FAMILY_ARP`, which guest
/// kernels rarely have): a fenced source may still answer ARP until it
/// powers off, so the resumed guest announces itself twice (see
/// `announce.rs`).
pub(crate) struct Fence {
    /// The registered hook.
    ops: KBox<[bindings::nf_hook_ops; 1]>,
    /// What the hook reads.
    gate: KBox<Gate>,
}

impl Fence {
    /// Installs a fence letting through only packets of `sk`.
    pub(crate) fn install(sk: *mut bindings::sock) -> Result<Self> {
        let gate = KBox::new(
            Gate {
                sk,
                open: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;
        let ops = KBox::new(
            [bindings::nf_hook_ops {
                hook: Some(fence_hook),
                priv_: (&*gate as *const Gate).cast_mut().cast(),
                pf: bindings::NFPROTO_IPV4 as u8,
                hooknum: bindings::nf_inet_hooks_NF_INET_LOCAL_OUT,
                priority: bindings::nf_ip_hook_priorities_NF_IP_PRI_FIRST,
                ..Default::default()
            }],
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is fully initialised and stays allocated, unmoved,
        // until `drop` unregisters it; `init_net` lives forever.
        let ret = unsafe {
            bindings::nf_register_net_hooks(
                core::ptr::addr_of_mut!(bindings::init_net),
                ops.as_ptr(),
                1,
            )
        };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(Self { ops, gate })
    }

    /// Lets every packet through from now on, at once. Removing the hook
    /// (the drop) waits for a grace period, several milliseconds once
    /// grace periods are no longer expedited: a resumed guest opens its
    /// fence first and removes it after it has announced itself.
    pub(crate) fn open(&self) {
        self.gate.open.store(true, Ordering::Relaxed);
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        // SAFETY: Registered in `install`; unregistering waits for hooks in
        // flight (synchronize_net), so `ops` and the gate can be freed
        // afterwards.
        unsafe {
            bindings::nf_unregister_net_hooks(
                core::ptr::addr_of_mut!(bindings::init_net),
                self.ops.as_ptr(),
                1,
            )
        };
    }
}
