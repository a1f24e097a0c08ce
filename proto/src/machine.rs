// SPDX-License-Identifier: GPL-2.0

//! The machine description source and target exchange before any page moves.
//!
//! The source's image only makes sense on a machine of the same shape: the
//! same RAM map (every frame the image names must exist and be RAM), the same
//! vCPU count, the same paging depth, and a CPU offering at least every
//! feature the source kernel may have started to use. A target compares the
//! source's description with its own and refuses on the first difference.

use super::wire::{WireError, PAGE_SIZE, PFN_LIMIT};

/// Version of the image format (how pages and CPU context are interpreted).
pub const IMAGE_VERSION: u32 = 1;

/// Most RAM ranges a description carries.
pub const MAX_RAM_RANGES: usize = 16;

/// Number of CPUID feature words compared.
pub const CPU_FEATURE_WORDS: usize = 4;

/// A range of RAM frames: `[start_pfn, start_pfn + nr_pages)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RamRange {
    /// First page frame number.
    pub start_pfn: u64,
    /// Number of frames.
    pub nr_pages: u64,
}

impl RamRange {
    /// One past the last frame.
    pub fn end_pfn(&self) -> u64 {
        self.start_pfn + self.nr_pages
    }
}

/// Which field of two descriptions differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Mismatch {
    /// Image format version.
    ImageVersion = 1,
    /// Page size.
    PageSize = 2,
    /// Number of vCPUs.
    Vcpus = 3,
    /// Paging levels (4 or 5).
    PagingLevels = 4,
    /// The source uses a CPU feature the target lacks.
    CpuFeatures = 5,
    /// The RAM maps differ.
    RamMap = 6,
}

impl Mismatch {
    /// The mismatch for a wire detail code.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Mismatch::ImageVersion,
            2 => Mismatch::PageSize,
            3 => Mismatch::Vcpus,
            4 => Mismatch::PagingLevels,
            5 => Mismatch::CpuFeatures,
            6 => Mismatch::RamMap,
            _ => return None,
        })
    }

    /// A short description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mismatch::ImageVersion => "image format version differs",
            Mismatch::PageSize => "page size differs",
            Mismatch::Vcpus => "vCPU count differs",
            Mismatch::PagingLevels => "paging levels differ",
            Mismatch::CpuFeatures => "target CPU lacks a feature the source uses",
            Mismatch::RamMap => "RAM map differs",
        }
    }
}

/// A guest's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineDesc {
    /// [`IMAGE_VERSION`] of the sender.
    pub image_version: u32,
    /// Page size in bytes; always [`PAGE_SIZE`].
    pub page_size: u32,
    /// Number of possible vCPUs.
    pub vcpus: u32,
    /// Page-table levels in use: 4 or 5.
    pub paging_levels: u32,
    /// CPUID feature words: leaf 1 ECX and EDX, leaf 7.0 EBX and ECX.
    pub cpu_features: [u32; CPU_FEATURE_WORDS],
    nr_ranges: u32,
    ranges: [RamRange; MAX_RAM_RANGES],
}

impl MachineDesc {
    /// Encoded length: six words, the feature words, then the ranges.
    pub const ENCODED_LEN: usize = 4 * 5 + 4 * CPU_FEATURE_WORDS + 16 * MAX_RAM_RANGES;

    /// A description with no RAM ranges yet.
    pub const fn new(
        vcpus: u32,
        paging_levels: u32,
        cpu_features: [u32; CPU_FEATURE_WORDS],
    ) -> Self {
        Self {
            image_version: IMAGE_VERSION,
            page_size: PAGE_SIZE as u32,
            vcpus,
            paging_levels,
            cpu_features,
            nr_ranges: 0,
            ranges: [RamRange {
                start_pfn: 0,
                nr_pages: 0,
            }; MAX_RAM_RANGES],
        }
    }

    /// Appends a RAM range; ranges must come in ascending order, must not
    /// overlap and must not be empty. A range touching the previous one is
    /// merged into it.
    pub fn push_range(&mut self, range: RamRange) -> Result<(), WireError> {
        let end = range.start_pfn.checked_add(range.nr_pages);
        if range.nr_pages == 0 || !matches!(end, Some(e) if e <= PFN_LIMIT) {
            return Err(WireError::BadField);
        }
        if let Some(last) = self.ranges().last() {
            if range.start_pfn < last.end_pfn() {
                return Err(WireError::BadField);
            }
            if range.start_pfn == last.end_pfn() {
                self.ranges[self.nr_ranges as usize - 1].nr_pages += range.nr_pages;
                return Ok(());
            }
        }
        if self.nr_ranges as usize == MAX_RAM_RANGES {
            return Err(WireError::NoSpace);
        }
        self.ranges[self.nr_ranges as usize] = range;
        self.nr_ranges += 1;
        Ok(())
    }

    /// The RAM ranges.
    pub fn ranges(&self) -> &[RamRange] {
        &self.ranges[..self.nr_ranges as usize]
    }

    /// Total number of RAM frames.
    pub fn total_pages(&self) -> u64 {
        self.ranges().iter().map(|r| r.nr_pages).sum()
    }

    /// Whether `pfn` is a RAM frame of this machine.
    pub fn contains_pfn(&self, pfn: u64) -> bool {
        self.ranges()
            .iter()
            .any(|r| pfn >= r.start_pfn && pfn < r.end_pfn())
    }

    /// Checks that an image described by `self` (the source) can run on a
    /// machine described by `target`.
    pub fn check_compatible(&self, target: &MachineDesc) -> Result<(), Mismatch> {
        if self.image_version != target.image_version {
            return Err(Mismatch::ImageVersion);
        }
        if self.page_size != target.page_size {
            return Err(Mismatch::PageSize);
        }
        if self.vcpus != target.vcpus {
            return Err(Mismatch::Vcpus);
        }
        if self.paging_levels != target.paging_levels {
            return Err(Mismatch::PagingLevels);
        }
        let lacking = self
            .cpu_features
            .iter()
            .zip(target.cpu_features.iter())
            .any(|(s, t)| s & !t != 0);
        if lacking {
            return Err(Mismatch::CpuFeatures);
        }
        if self.ranges() != target.ranges() {
            return Err(Mismatch::RamMap);
        }
        Ok(())
    }

    /// Encodes the description.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let words = [
            self.image_version,
            self.page_size,
            self.vcpus,
            self.paging_levels,
            self.nr_ranges,
        ];
        let mut off = 0;
        for w in words.iter().chain(self.cpu_features.iter()) {
            out[off..off + 4].copy_from_slice(&w.to_le_bytes());
            off += 4;
        }
        for r in &self.ranges {
            out[off..off + 8].copy_from_slice(&r.start_pfn.to_le_bytes());
            out[off + 8..off + 16].copy_from_slice(&r.nr_pages.to_le_bytes());
            off += 16;
        }
        out
    }

    /// Decodes and validates a description: exact length, page size, vCPU
    /// count, paging levels, and well-formed ranges.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        super::wire::exact_len(buf, Self::ENCODED_LEN)?;
        let word = |i: usize| {
            u32::from_le_bytes([buf[4 * i], buf[4 * i + 1], buf[4 * i + 2], buf[4 * i + 3]])
        };
        let mut features = [0u32; CPU_FEATURE_WORDS];
        for (i, f) in features.iter_mut().enumerate() {
            *f = word(5 + i);
        }
        let mut desc = MachineDesc::new(word(2), word(3), features);
        desc.image_version = word(0);
        desc.page_size = word(1);
        let nr_ranges = word(4) as usize;
        if desc.page_size as usize != PAGE_SIZE
            || desc.vcpus == 0
            || !(desc.paging_levels == 4 || desc.paging_levels == 5)
            || nr_ranges == 0
            || nr_ranges > MAX_RAM_RANGES
        {
            return Err(WireError::BadField);
        }
        let base = 4 * (5 + CPU_FEATURE_WORDS);
        for i in 0..MAX_RAM_RANGES {
            let off = base + 16 * i;
            let mut a = [0u8; 8];
            a.copy_from_slice(&buf[off..off + 8]);
            let start_pfn = u64::from_le_bytes(a);
            a.copy_from_slice(&buf[off + 8..off + 16]);
            let nr_pages = u64::from_le_bytes(a);
            if i < nr_ranges {
                let before = desc.nr_ranges;
                desc.push_range(RamRange {
                    start_pfn,
                    nr_pages,
                })?;
                // Adjacent ranges would have been merged: a canonical sender
                // never sends them, so they are malformed.
                if desc.nr_ranges == before {
                    return Err(WireError::BadField);
                }
            } else if start_pfn != 0 || nr_pages != 0 {
                return Err(WireError::BadField);
            }
        }
        Ok(desc)
    }
}
