// SPDX-License-Identifier: GPL-2.0

//! Verify mode: check every page of the image against the hash the source
//! took at its checkpoint, before anything is jumped into.
//!
//! The check reads each page where the trampoline will take it from: its
//! own frame when it was written in place, else its slot. A page the source
//! hashed but never sent, or whose bytes differ, fails the image.

use crate::failure::Failure;
use crate::image::{frame_ptr, Image};
use crate::page_hash::page_hash;
use crate::proto::uapi;
use crate::proto::wire::{VerifyHashes, PAGE_SIZE};
use kernel::prelude::*;

/// The source's checkpoint hashes, indexed by frame; 0 = not checked.
pub(crate) struct Expected {
    hashes: KVVec<u64>,
    frames: u64,
}

/// What a verification found wrong.
#[derive(Default)]
pub(crate) struct Mismatch {
    /// Pages whose bytes differ from their hash.
    pub(crate) differ: u64,
    /// Pages hashed by the source but never received.
    pub(crate) missing: u64,
    /// The first frame found wrong.
    pub(crate) first_pfn: u64,
}

impl Expected {
    /// No hashes yet, for an image of frames `0..frames`; nothing is
    /// allocated until the first record arrives.
    pub(crate) fn new(frames: u64) -> Self {
        Self {
            hashes: KVVec::new(),
            frames,
        }
    }

    /// Stores the hashes of one record.
    pub(crate) fn take(&mut self, record: &VerifyHashes<'_>) -> Result<(), Failure> {
        let end = record.first_pfn + record.len() as u64;
        if end > self.frames {
            return Err(Failure::new(
                crate::errno::errno(uapi::EPROTO),
                "verify hash outside the RAM map",
            ));
        }
        if self.hashes.is_empty() {
            self.hashes = KVVec::from_elem(0u64, self.frames as usize, GFP_KERNEL)
                .map_err(|_| Failure::new(ENOMEM, "cannot allocate the verify hashes"))?;
        }
        for (pfn, hash) in record.iter() {
            self.hashes[pfn as usize] = hash;
        }
        Ok(())
    }

    /// Number of pages to check.
    pub(crate) fn count(&self) -> u64 {
        self.hashes.iter().filter(|&&h| h != 0).count() as u64
    }

    /// Checks every hashed page of `image`; returns how many were checked.
    pub(crate) fn check(&self, image: &Image) -> Result<u64, Mismatch> {
        let mut bad = Mismatch::default();
        let mut checked = 0;
        for (pfn, &want) in self.hashes.iter().enumerate() {
            if want == 0 {
                continue;
            }
            let pfn = pfn as u64;
            checked += 1;
            let ok = match image.location(pfn) {
                None => {
                    bad.missing += 1;
                    false
                }
                Some(frame) => {
                    // SAFETY: `frame` is claimed by the image and mapped in
                    // the direct map; nothing else writes it.
                    let page = unsafe { &*frame_ptr(frame).cast::<[u8; PAGE_SIZE]>() };
                    let same = page_hash(page) == want;
                    if !same {
                        bad.differ += 1;
                    }
                    same
                }
            };
            if !ok && bad.differ + bad.missing == 1 {
                bad.first_pfn = pfn;
            }
        }
        match bad.differ + bad.missing {
            0 => Ok(checked),
            _ => Err(bad),
        }
    }
}
