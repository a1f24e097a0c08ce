// SPDX-License-Identifier: GPL-2.0

//! The user address spaces of the guest, each held by a reference.
//!
//! The paging tracker walks the user half of every `mm`. Each process's
//! `mm` is found from its thread-group leader, or from another of its
//! threads when the leader has exited (a zombie leader has no `mm`).
//! Processes that share an `mm` (`CLONE_VM`) are listed once. The list's
//! storage is allocated up front, so collecting never allocates: the
//! checkpoint collects with interrupts off.

use crate::bindings;
use crate::shim;
use kernel::prelude::*;

/// Most address spaces tracked; beyond it the paging tracker gives up (the
/// migration fails with a clear message rather than miss writes).
pub(crate) const MAX_ADDRESS_SPACES: usize = 4096;

/// Referenced `mm`s.
pub(crate) struct AddressSpaces {
    mms: KVVec<*mut bindings::mm_struct>,
}

// SAFETY: The list holds counted references (`mm_users`), which any thread
// may use and drop.
unsafe impl Send for AddressSpaces {}

impl AddressSpaces {
    /// An empty list with room for [`MAX_ADDRESS_SPACES`].
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            mms: KVVec::with_capacity(MAX_ADDRESS_SPACES, GFP_KERNEL)?,
        })
    }

    /// Drops every reference. May sleep (the last reference to an exited
    /// process's `mm` tears it down).
    pub(crate) fn release(&mut self) {
        for &mm in self.mms.iter() {
            // SAFETY: `collect` took this reference with `get_task_mm`.
            unsafe { bindings::mmput(mm) };
        }
        // SAFETY: Raw pointers need no drop, and 0 is within capacity.
        unsafe { self.mms.set_len(0) };
    }

    /// Lists every user address space, with a reference on each. Call it
    /// on an empty list (see [`Self::release`]); it neither allocates nor
    /// sleeps, so it may run with interrupts off. Fails with `E2BIG` when
    /// there are more than [`MAX_ADDRESS_SPACES`].
    pub(crate) fn collect(&mut self) -> Result {
        let mut result = Ok(());
        shim::rcu_read_lock();
        let init = core::ptr::addr_of_mut!(bindings::init_task);
        let mut p = shim::next_task(init);
        while p != init {
            if self.mms.len() == self.mms.capacity() {
                result = Err(E2BIG);
                break;
            }
            if let Some(mm) = process_mm(p) {
                if self.mms.contains(&mm) {
                    // SAFETY: `process_mm` took this extra reference; the
                    // list holds another, so this one is not the last and
                    // dropping it does not sleep.
                    unsafe { bindings::mmput(mm) };
                } else {
                    // Within capacity: `push` does not allocate.
                    let _ = self.mms.push(mm, GFP_NOWAIT);
                }
            }
            p = shim::next_task(p);
        }
        shim::rcu_read_unlock();
        result
    }

    /// The page-table root of the `i`th listed address space, as a
    /// physical address.
    pub(crate) fn root(&self, i: usize) -> u64 {
        // The list holds a reference on each `mm`, which keeps its `pgd`.
        self.mms.get(i).map_or(0, |&mm| shim::mm_pgd_pa(mm))
    }

    /// The `i`th listed address space, for identity comparisons.
    pub(crate) fn get(&self, i: usize) -> *mut bindings::mm_struct {
        self.mms.get(i).copied().unwrap_or(core::ptr::null_mut())
    }

    /// Whether `mm` is listed.
    pub(crate) fn contains(&self, mm: *mut bindings::mm_struct) -> bool {
        self.mms.contains(&mm)
    }

    /// The listed address spaces, for identity comparisons.
    pub(crate) fn as_slice(&self) -> &[*mut bindings::mm_struct] {
        self.mms.as_slice()
    }

    /// How many address spaces are listed.
    pub(crate) fn len(&self) -> usize {
        self.mms.len()
    }
}

impl Drop for AddressSpaces {
    fn drop(&mut self) {
        self.release();
    }
}

/// The `mm` of the process led by `leader`, with a reference, if it has one
/// (kernel threads have none).
///
/// Called under `rcu_read_lock()`.
fn process_mm(leader: *mut bindings::task_struct) -> Option<*mut bindings::mm_struct> {
    let mut t = leader;
    while !t.is_null() {
        // SAFETY: Under RCU, tasks on the task and thread lists stay valid;
        // `get_task_mm` takes the task lock, which does not sleep, and
        // returns NULL for kernel threads.
        let mm = unsafe { bindings::get_task_mm(t) };
        if !mm.is_null() {
            return Some(mm);
        }
        t = shim::next_thread(t);
    }
    None
}
