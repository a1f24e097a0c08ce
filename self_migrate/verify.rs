// SPDX-License-Identifier: GPL-2.0

//! Verify mode (`verify=1`): the hash of every page of the image as it was
//! at the checkpoint, sent to the target, which checks every page it is
//! about to resume against it and refuses to jump on any difference.
//!
//! The hashes are taken from the page contents while the guest is stopped,
//! independently of what the dirty tracker believes was sent, so a page the
//! tracker missed, a page torn in transit, misplaced by the loader or lost
//! in a slot relocation all show up as a mismatch.

use crate::channel::Channel;
use crate::failure::Failure;
use crate::proto::machine::MachineDesc;
use crate::proto::wire::{RecordKind, VerifyHashes, MAX_VERIFY_HASHES};
use crate::tracker::Tracker;
use kernel::prelude::*;

/// Checkpoint hashes indexed by page frame; 0 for frames not in the image.
pub(crate) struct Verify {
    hashes: KVVec<u64>,
}

impl Verify {
    /// A table for every frame of `desc`, leaving its own storage out of
    /// the image.
    pub(crate) fn new(desc: &MachineDesc, tracker: &mut Tracker) -> Result<Self> {
        let end = desc.ranges().last().map_or(0, |r| r.end_pfn()) as usize;
        let hashes = KVVec::from_elem(0u64, end, GFP_KERNEL)?;
        tracker.exclude(hashes.as_ptr().cast(), hashes.len() * 8);
        Ok(Self { hashes })
    }

    /// Forgets every hash (start of a checkpoint attempt).
    pub(crate) fn clear(&mut self) {
        self.hashes.iter_mut().for_each(|h| *h = 0);
    }

    /// Records the checkpoint hash of `pfn`.
    pub(crate) fn set(&mut self, pfn: u64, hash: u64) {
        if let Some(h) = self.hashes.get_mut(pfn as usize) {
            *h = hash;
        }
    }

    /// Sends every run of hashes that holds a nonzero one; returns how
    /// many nonzero hashes went out. `buf` must hold the largest record.
    pub(crate) fn send(&self, chan: &mut Channel<'_, '_>, buf: &mut [u8]) -> Result<u64, Failure> {
        let mut count = 0;
        for (i, run) in self.hashes.chunks(MAX_VERIFY_HASHES).enumerate() {
            let nonzero = run.iter().filter(|&&h| h != 0).count() as u64;
            if nonzero == 0 {
                continue;
            }
            let first = (i * MAX_VERIFY_HASHES) as u64;
            let len = VerifyHashes::encode(first, run, buf)
                .map_err(|_| Failure::new(ENOMEM, "send buffer too small for hashes"))?;
            chan.send(RecordKind::VerifyHashes, &buf[..len])?;
            count += nonzero;
        }
        Ok(count)
    }
}
