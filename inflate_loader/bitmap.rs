// SPDX-License-Identifier: GPL-2.0

//! A set of frame numbers, one bit per frame.

use kernel::prelude::*;

/// A set of frame numbers.
pub(crate) struct Bitmap {
    words: KVVec<u64>,
}

impl Bitmap {
    /// An empty set for frames `0..frames`.
    pub(crate) fn new(frames: u64) -> Result<Self> {
        Ok(Self {
            words: KVVec::from_elem(0u64, frames.div_ceil(64) as usize, GFP_KERNEL)?,
        })
    }

    /// Whether `pfn` is in the set.
    pub(crate) fn get(&self, pfn: u64) -> bool {
        self.words
            .get((pfn / 64) as usize)
            .is_some_and(|w| w & (1 << (pfn % 64)) != 0)
    }

    /// Adds `pfn` to the set.
    pub(crate) fn set(&mut self, pfn: u64) {
        if let Some(w) = self.words.get_mut((pfn / 64) as usize) {
            *w |= 1 << (pfn % 64);
        }
    }

    /// Removes `pfn` from the set.
    pub(crate) fn unset(&mut self, pfn: u64) {
        if let Some(w) = self.words.get_mut((pfn / 64) as usize) {
            *w &= !(1 << (pfn % 64));
        }
    }

    /// The set as words of 64 frames each, frame 0 in bit 0 of word 0.
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    /// Removes every frame of `other` (a set over the same frames).
    pub(crate) fn remove_all(&mut self, other: &Bitmap) {
        for (w, o) in self.words.iter_mut().zip(other.words.iter()) {
            *w &= !o;
        }
    }

    /// The frames in the set, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut rest = w;
            core::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                Some(i as u64 * 64 + u64::from(bit))
            })
        })
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
}
