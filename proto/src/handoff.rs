// SPDX-License-Identifier: GPL-2.0

//! The hand-off page: what the target's loader leaves for the image it
//! resumes.
//!
//! The source reserves one page that is not part of the image and names its
//! frame in [`super::wire::ResumeInfo`]. Just before the jump the loader
//! writes a [`Handoff`] there; the resumed image reads it to learn what it
//! cannot know itself, because it was frozen at the checkpoint: how many
//! pages arrived, what verification found, and the times that make up its
//! downtime (the source's share from the commit record, the target's as
//! time-stamp counter readings on the target's own CPU, which the resumed
//! image reads again).
//!
//! Layout (little-endian), at offset 0 of the page:
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SMHO"
//!      4     4  version HANDOFF_VERSION
//!      8    32  CommitInfo (the source's times)
//!     40     8  target TSC when the commit arrived
//!     48     8  target TSC just before the jump
//!     56     8  target TSC frequency in kHz
//!     64     8  pages received
//!     72     8  bytes received
//!     80     8  pages verified (0 without verify)
//!     88     8  pages staged at the checkpoint
//!     96     8  target TSC when the trampoline started  (written by it)
//!    104     8  target TSC when it had copied every page (written by it)
//!    112     8  slotted pages found already in place    (written by it)
//!    120     8  slotted pages left in place, unwritten (not in the copy list)
//!    128     8  of those, pages a check found different (verify only)
//!    136     8  frames of the image
//!    144     8  of those, written in place as they arrived
//!    152     8  moved home from a slot between rounds
//!    160     8  held in slots
//!    168     8  slotted pages identical at home when they arrived
//!    176     8  target TSC when the CPU context arrived
//!    184     8  target TSC when the Complete record was sent
//! ```
//!
//! The loader logs none of this itself once the image is complete: a
//! console line is written with interrupts off, inside the downtime. The
//! resumed image logs it instead.
//!
//! The loader writes every field but the three words at [`STAMP_OFFSET`],
//! which the trampoline stores in the page's home frame after its copy.

use super::wire::{le64, put_le64s, CommitInfo, WireError};

/// First four bytes of a hand-off: `"SMHO"`.
pub const HANDOFF_MAGIC: [u8; 4] = *b"SMHO";

/// Version of the layout.
pub const HANDOFF_VERSION: u32 = 3;

/// Offset of the trampoline's two time-stamp words in the page.
pub const STAMP_OFFSET: usize = 96;

/// What the loader tells the image it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handoff {
    /// The source's side of the downtime.
    pub commit: CommitInfo,
    /// Target time-stamp counter when the commit arrived.
    pub tsc_commit: u64,
    /// Target time-stamp counter just before the jump.
    pub tsc_jump: u64,
    /// Target time-stamp counter frequency, kHz.
    pub tsc_khz: u64,
    /// Pages the target received.
    pub pages_received: u64,
    /// Bytes the target received, headers included.
    pub bytes_received: u64,
    /// Pages checked against their checkpoint hash (0 without verify).
    pub pages_verified: u64,
    /// Pages the source copied at the checkpoint.
    pub staged_pages: u64,
    /// Target TSC when the trampoline started (0 until it ran).
    pub tsc_trampoline: u64,
    /// Target TSC when the trampoline had copied every page.
    pub tsc_copied: u64,
    /// Slotted pages the trampoline found already holding their bytes at
    /// home (not copied).
    pub pages_in_place: u64,
    /// Slotted pages the loader left out of the copy list: identical at
    /// home when they arrived, and their home not written since.
    pub pages_unwritten: u64,
    /// Pages the loader would have left out but found different when it
    /// checked them at the jump (with verify only; copied instead).
    pub unwritten_misses: u64,
    /// Frames of the image.
    pub image_frames: u64,
    /// Of those, written in place as they arrived.
    pub frames_in_place: u64,
    /// Moved home from a slot between rounds.
    pub moved_home: u64,
    /// Held in slots.
    pub slotted: u64,
    /// Slotted pages identical at home when they arrived (0 without the
    /// loader's write watch).
    pub identical_on_arrival: u64,
    /// Target time-stamp counter when the CPU context arrived.
    pub tsc_context: u64,
    /// Target time-stamp counter when the Complete record was sent.
    pub tsc_complete: u64,
}

/// Microseconds between two readings of a counter running at `khz`
/// (64-bit arithmetic only: the kernel has no 128-bit division; exact for
/// gaps below 2^64 / 1000 ticks, some 70 days at 3 GHz).
pub fn tsc_delta_us(from: u64, to: u64, khz: u64) -> u64 {
    if khz == 0 {
        return 0;
    }
    to.saturating_sub(from).saturating_mul(1000) / khz
}

impl Handoff {
    /// Encoded length.
    pub const ENCODED_LEN: usize = 192;

    /// Encodes the hand-off.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0..4].copy_from_slice(&HANDOFF_MAGIC);
        out[4..8].copy_from_slice(&HANDOFF_VERSION.to_le_bytes());
        out[8..40].copy_from_slice(&self.commit.encode());
        put_le64s(
            &mut out[40..],
            &[
                self.tsc_commit,
                self.tsc_jump,
                self.tsc_khz,
                self.pages_received,
                self.bytes_received,
                self.pages_verified,
                self.staged_pages,
                self.tsc_trampoline,
                self.tsc_copied,
                self.pages_in_place,
                self.pages_unwritten,
                self.unwritten_misses,
                self.image_frames,
                self.frames_in_place,
                self.moved_home,
                self.slotted,
                self.identical_on_arrival,
                self.tsc_context,
                self.tsc_complete,
            ],
        );
        out
    }

    /// Decodes a hand-off from the start of `page`; refuses anything but
    /// this version's layout (a page the loader did not write, say).
    pub fn decode(page: &[u8]) -> Result<Self, WireError> {
        if page.len() < Self::ENCODED_LEN {
            return Err(WireError::Truncated);
        }
        if page[0..4] != HANDOFF_MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u32::from_le_bytes([page[4], page[5], page[6], page[7]]);
        if version != HANDOFF_VERSION {
            return Err(WireError::VersionMismatch {
                got: version as u16,
            });
        }
        let commit = CommitInfo::decode(&page[8..40])?;
        let w = |i: usize| le64(&page[40 + 8 * i..]);
        let h = Self {
            commit,
            tsc_commit: w(0),
            tsc_jump: w(1),
            tsc_khz: w(2),
            pages_received: w(3),
            bytes_received: w(4),
            pages_verified: w(5),
            staged_pages: w(6),
            tsc_trampoline: w(7),
            tsc_copied: w(8),
            pages_in_place: w(9),
            pages_unwritten: w(10),
            unwritten_misses: w(11),
            image_frames: w(12),
            frames_in_place: w(13),
            moved_home: w(14),
            slotted: w(15),
            identical_on_arrival: w(16),
            tsc_context: w(17),
            tsc_complete: w(18),
        };
        if h.tsc_khz == 0 || h.tsc_jump < h.tsc_commit {
            return Err(WireError::BadField);
        }
        Ok(h)
    }
}
