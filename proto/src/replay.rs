// SPDX-License-Identifier: GPL-2.0

//! The set of token ids a loader has already admitted.
//!
//! Tokens are single-use: a loader remembers every id it admitted and
//! refuses it again. The set lives in storage the caller provides and the
//! set owns for its lifetime (a `&mut` slice, or a vector allocated once
//! when the loader starts, kept with the loader's state across
//! connections), so it never allocates and never grows.
//!
//! An id needs remembering only until its token expires: after that the
//! token is refused as expired anyway. So when the set is full, an entry
//! whose expiry has passed is reused; if every entry is still live, the new
//! token is **refused** ([`ReplayError::Full`]) rather than an old id
//! forgotten, since forgetting would let that token be replayed. The
//! capacity therefore bounds how many unexpired tokens a loader can admit;
//! a loader that lives for one migration (a fresh VM) needs very few.
//!
//! Time is wall-clock unix seconds. The set remembers the latest time it
//! was shown and never goes back from it, so a clock stepped backwards
//! cannot make an expired entry live again while its slot is reused.

use super::token::TOKEN_ID_LEN;
use core::ops::DerefMut;

/// One remembered token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayEntry {
    /// The token's id.
    pub id: [u8; TOKEN_ID_LEN],
    /// The token's expiry; 0 marks a free slot (a token expiring at 0 is
    /// always expired and is never admitted).
    pub expiry: u64,
}

impl ReplayEntry {
    /// A free slot.
    pub const EMPTY: ReplayEntry = ReplayEntry {
        id: [0; TOKEN_ID_LEN],
        expiry: 0,
    };
}

/// Why an id cannot be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// The id was admitted before.
    Replayed,
    /// Every slot holds an unexpired id.
    Full,
}

/// A fixed-capacity set of admitted token ids over caller storage `S`
/// (anything that dereferences to a slice of entries: `&mut [ReplayEntry]`,
/// a `Vec`, a kernel `KVec`).
#[derive(Debug)]
pub struct ReplaySet<S: DerefMut<Target = [ReplayEntry]>> {
    slots: S,
    latest: u64,
}

impl<S: DerefMut<Target = [ReplayEntry]>> ReplaySet<S> {
    /// An empty set over `slots` (every slot is cleared).
    pub fn new(mut slots: S) -> Self {
        slots.fill(ReplayEntry::EMPTY);
        Self { slots, latest: 0 }
    }

    /// The latest time the set was shown.
    pub fn latest(&self) -> u64 {
        self.latest
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of ids remembered (live or expired but not yet reused).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|e| e.expiry != 0).count()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Advances the set's clock to `now` unless it is already later, and
    /// returns the set's time. Callers use the result as "now" for expiry
    /// checks too, so that both agree.
    pub fn observe(&mut self, now: u64) -> u64 {
        self.latest = self.latest.max(now);
        self.latest
    }

    /// Whether `id` was admitted before.
    pub fn contains(&self, id: &[u8; TOKEN_ID_LEN]) -> bool {
        self.slots.iter().any(|e| e.expiry != 0 && e.id == *id)
    }

    /// The slot a new id would take: a free one, else an expired one.
    fn free_slot(&self) -> Option<usize> {
        let now = self.latest;
        self.slots
            .iter()
            .position(|e| e.expiry == 0)
            .or_else(|| self.slots.iter().position(|e| e.expiry <= now))
    }

    /// Checks that `id` could be admitted now, without remembering it.
    pub fn check(&self, id: &[u8; TOKEN_ID_LEN]) -> Result<(), ReplayError> {
        if self.contains(id) {
            return Err(ReplayError::Replayed);
        }
        self.free_slot().map(|_| ()).ok_or(ReplayError::Full)
    }

    /// Remembers `id`, valid until `expiry`. Refuses an id already present
    /// and, when every slot holds an unexpired id, any new one.
    pub fn insert(&mut self, id: &[u8; TOKEN_ID_LEN], expiry: u64) -> Result<(), ReplayError> {
        self.check(id)?;
        let slot = self.free_slot().ok_or(ReplayError::Full)?;
        // An expiry of 0 would read as a free slot; such a token is never
        // admitted, but keep the entry live regardless.
        self.slots[slot] = ReplayEntry {
            id: *id,
            expiry: expiry.max(1),
        };
        Ok(())
    }
}
