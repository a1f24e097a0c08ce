// SPDX-License-Identifier: GPL-2.0

//! Pre-copy rounds: stream guest memory while the guest keeps running.
//!
//! Round 0 sends every RAM page in use: pages of free buddy blocks are
//! skipped, all-zero pages travel as markers, and a page whose direct-map
//! mapping is absent is counted and not read.

use crate::bindings;
use crate::channel::Channel;
use crate::control;
use crate::failure::{Context, Failure};
use crate::proto::machine::MachineDesc;
use crate::proto::wire::{BatchWriter, HEADER_LEN, MAX_PAYLOAD, PAGE_SIZE};
use crate::shim;
use kernel::prelude::*;

/// The kernel virtual address of `pfn` in the direct map, if it is mapped.
fn direct_map_page(pfn: u64) -> Option<&'static [u8; PAGE_SIZE]> {
    // SAFETY: `page_offset_base` is set at boot and never changes.
    let base = unsafe { bindings::page_offset_base } as u64;
    let kvaddr = base + pfn * PAGE_SIZE as u64;
    let mut level = 0u32;
    // SAFETY: `lookup_address` only walks the kernel page tables.
    let pte = unsafe { bindings::lookup_address(kvaddr as _, &mut level) };
    // SAFETY: A non-null result points to a live page-table entry.
    if pte.is_null() || unsafe { (*pte).pte } & (1usize << bindings::_PAGE_BIT_PRESENT) == 0 {
        return None;
    }
    // SAFETY: The direct map covers all RAM and the entry is present, so
    // the page is readable. Other CPUs may write it concurrently; the copy
    // is then stale, which pre-copy tolerates: the page is dirty and is
    // sent again.
    Some(unsafe { &*(kvaddr as *const [u8; PAGE_SIZE]) })
}

/// Whether a page holds only zero bytes.
fn is_zero(page: &[u8; PAGE_SIZE]) -> bool {
    page.chunks_exact(8)
        .all(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == 0)
}

/// Sends one finished batch and accounts for it.
fn flush(chan: &mut Channel<'_>, batch: BatchWriter<'_>, zero: u64) -> Result<(), Failure> {
    let pages = batch.count() as u64;
    let seq = chan.next_seq();
    let record = batch
        .finish(seq)
        .map_err(|_| Failure::new(EINVAL, "building a page batch failed"))?;
    chan.send_built(record)?;
    let bytes = chan.bytes_sent;
    control::update(|s, x| {
        s.pages_sent += pages;
        s.bytes_sent = bytes;
        x.zero_pages += zero;
    });
    Ok(())
}

/// Round 0: every RAM page in use.
pub(crate) fn round0(chan: &mut Channel<'_>, desc: &MachineDesc) -> Result<(), Failure> {
    let mut buf = KVVec::from_elem(0u8, HEADER_LEN + MAX_PAYLOAD, GFP_KERNEL)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the send buffer")?;
    let mut batch =
        BatchWriter::new(&mut buf, 0).map_err(|_| Failure::new(ENOMEM, "send buffer too small"))?;
    let (mut zero, mut free, mut unmapped) = (0u64, 0u64, 0u64);
    for range in desc.ranges() {
        let mut pfn = range.start_pfn;
        while pfn < range.end_pfn() {
            let skip = shim::free_block_pages(pfn);
            if skip > 0 {
                let n = skip.min(range.end_pfn() - pfn);
                free += n;
                pfn += n;
                continue;
            }
            match direct_map_page(pfn) {
                None => unmapped += 1,
                Some(page) if is_zero(page) => {
                    zero += 1;
                    batch
                        .push_zero(pfn)
                        .map_err(|_| Failure::new(EINVAL, "bad page frame"))?;
                }
                Some(page) => batch
                    .push_data(pfn, page)
                    .map_err(|_| Failure::new(EINVAL, "bad page frame"))?,
            }
            pfn += 1;
            if batch.is_full() {
                flush(chan, batch, zero)?;
                zero = 0;
                if control::abort_requested() {
                    return Err(control::aborted());
                }
                batch = BatchWriter::new(&mut buf, 0)
                    .map_err(|_| Failure::new(ENOMEM, "send buffer too small"))?;
            }
        }
    }
    if batch.count() > 0 {
        flush(chan, batch, zero)?;
    }
    control::update(|_, x| {
        x.free_pages += free;
        x.unmapped_pages += unmapped;
    });
    Ok(())
}
