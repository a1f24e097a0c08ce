// SPDX-License-Identifier: GPL-2.0

//! Record framing of the migration stream.
//!
//! Every record is a fixed 16-byte little-endian header followed by a
//! payload whose length the header states and which is bounded per kind:
//!
//! ```text
//! offset  size  field
//!      0     4  magic    "SMIG"
//!      4     2  version  VERSION
//!      6     2  kind     RecordKind
//!      8     4  len      payload length in bytes
//!     12     4  seq      record counter, 0 for the first record
//! ```
//!
//! A receiver reads the header, decodes it with [`Header::decode`] (which
//! refuses an unknown version or kind and a length beyond the kind's bound)
//! and only then reads and decodes the payload. Nothing in a header can make a
//! receiver read or allocate more than [`MAX_PAYLOAD`] bytes.

use super::machine::MachineDesc;

/// First four bytes of every record: `"SMIG"`.
pub const MAGIC: [u8; 4] = *b"SMIG";

/// Version of this wire format. Peers of different versions refuse each other.
/// Version 2 added LZ4-compressed pages to page batches, version 3 sparse
/// pages, version 4 patches.
pub const VERSION: u16 = 4;

/// Length of the record header in bytes.
pub const HEADER_LEN: usize = 16;

/// Size of a guest page; the only page size the format knows.
pub const PAGE_SIZE: usize = 4096;

/// Most pages in one [`RecordKind::PageBatch`] record.
pub const MAX_BATCH_PAGES: usize = 32;

/// Length of a page batch's fixed part: round and count.
pub const BATCH_HEAD_LEN: usize = 8;

/// Length of one page entry (pfn and kind) in a page batch.
pub const ENTRY_LEN: usize = 8;

/// Largest payload of any record.
pub const MAX_PAYLOAD: usize = BATCH_HEAD_LEN + MAX_BATCH_PAGES * (ENTRY_LEN + PAGE_SIZE);

/// Largest CPU context record.
pub const MAX_CPU_CONTEXT: usize = 4096;

/// Page frame numbers must fit in 52 bits (x86-64's physical address width).
pub const PFN_LIMIT: u64 = 1 << 52;

/// Payload of a [`RecordKind::Token`] record: a sealed token (160 bytes,
/// `token.rs`) and the source's 16-byte salt. Stated here so that the
/// header bound needs no other file.
pub const TOKEN_RECORD_LEN: usize = 160 + 16;

/// Payload of a [`RecordKind::TokenReply`] record: reason code, detail,
/// and the target's 16-byte salt (`admission.rs`).
pub const TOKEN_REPLY_LEN: usize = 8 + 16;

/// Payload of a sealed [`RecordKind::Payment`] record, tag excluded: link
/// index, a zero word, the 32-byte link (`chain.rs`).
pub const PAYMENT_PAYLOAD_LEN: usize = 8 + 32;

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// The peer speaks another version of the format.
    VersionMismatch {
        /// The version the record carries.
        got: u16,
    },
    /// The kind field names no known record.
    UnknownKind(u16),
    /// The stated payload length exceeds the bound for its kind.
    Oversize {
        /// The record kind.
        kind: RecordKind,
        /// The stated length.
        len: u32,
    },
    /// The record counter is not the one expected next.
    OutOfOrder {
        /// The counter expected.
        expected: u32,
        /// The counter received.
        got: u32,
    },
    /// The payload ends before its contents do.
    Truncated,
    /// The payload has bytes after its contents.
    TrailingBytes,
    /// A page entry's kind is unknown.
    BadPageKind,
    /// A page frame number is beyond [`PFN_LIMIT`].
    PfnOutOfRange,
    /// A batch holds more than [`MAX_BATCH_PAGES`] pages, or none.
    BadBatchCount,
    /// A field holds a value the format forbids.
    BadField,
    /// The output buffer is too small for the record.
    NoSpace,
}

impl WireError {
    /// The errno a kernel caller reports for this error.
    pub fn errno(&self) -> i32 {
        match self {
            WireError::VersionMismatch { .. } => super::uapi::EPROTONOSUPPORT,
            WireError::NoSpace => super::uapi::ENOSPC,
            WireError::Oversize { .. } => super::uapi::EMSGSIZE,
            _ => super::uapi::EPROTO,
        }
    }

    /// A short, stable description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            WireError::BadMagic => "bad magic",
            WireError::VersionMismatch { .. } => "wire version mismatch",
            WireError::UnknownKind(_) => "unknown record kind",
            WireError::Oversize { .. } => "record too long for its kind",
            WireError::OutOfOrder { .. } => "record out of order",
            WireError::Truncated => "truncated record",
            WireError::TrailingBytes => "trailing bytes in record",
            WireError::BadPageKind => "unknown page entry kind",
            WireError::PfnOutOfRange => "page frame number out of range",
            WireError::BadBatchCount => "bad page count in batch",
            WireError::BadField => "invalid field value",
            WireError::NoSpace => "output buffer too small",
        }
    }
}

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKind {
    /// Source to target: the source's [`MachineDesc`].
    Hello = 1,
    /// Target to source: acceptance or a [`Refusal`] of the hello.
    HelloReply = 2,
    /// Source to target: a batch of pages of one pre-copy round.
    PageBatch = 3,
    /// Source to target: the saved CPU context of the checkpoint.
    CpuContext = 4,
    /// Target to source: the image is complete and verified.
    Complete = 5,
    /// Source to target: the source has stopped for good; resume. Carries
    /// the source's side of the downtime, see [`CommitInfo`].
    Commit = 6,
    /// Either way: the migration is abandoned, with a reason code.
    Abort = 7,
    /// Source to target (`verify=1`): the checkpoint hash of a run of
    /// frames, see [`VerifyHashes`].
    VerifyHashes = 8,
    /// Source to target, the first record: an admission token and the
    /// source's salt for this connection (see `token.rs`, `admission.rs`).
    Token = 9,
    /// Target to source: the verdict on the token and, on acceptance, the
    /// target's salt (see `admission.rs`).
    TokenReply = 10,
    /// Source to target, sealed: a hash-chain payment (see `chain.rs`).
    Payment = 11,
}

impl RecordKind {
    /// The kind for a wire value.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => RecordKind::Hello,
            2 => RecordKind::HelloReply,
            3 => RecordKind::PageBatch,
            4 => RecordKind::CpuContext,
            5 => RecordKind::Complete,
            6 => RecordKind::Commit,
            7 => RecordKind::Abort,
            8 => RecordKind::VerifyHashes,
            9 => RecordKind::Token,
            10 => RecordKind::TokenReply,
            11 => RecordKind::Payment,
            _ => return None,
        })
    }

    /// The largest payload a record of this kind may have.
    pub fn max_payload(self) -> usize {
        match self {
            RecordKind::Hello => MachineDesc::ENCODED_LEN,
            RecordKind::HelloReply => 8,
            RecordKind::PageBatch => MAX_PAYLOAD,
            RecordKind::CpuContext => MAX_CPU_CONTEXT,
            RecordKind::Complete => 0,
            RecordKind::Commit => CommitInfo::ENCODED_LEN,
            RecordKind::Abort => 4,
            RecordKind::VerifyHashes => VERIFY_HEAD_LEN + MAX_VERIFY_HASHES * 8,
            RecordKind::Token => TOKEN_RECORD_LEN,
            RecordKind::TokenReply => TOKEN_REPLY_LEN,
            RecordKind::Payment => PAYMENT_PAYLOAD_LEN,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: RecordKind,
    /// Payload length in bytes, already checked against the kind's bound.
    pub len: u32,
    /// Record counter.
    pub seq: u32,
}

impl Header {
    /// Encodes the header into `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
        out[8..12].copy_from_slice(&self.len.to_le_bytes());
        out[12..16].copy_from_slice(&self.seq.to_le_bytes());
    }

    /// Decodes and checks a header: magic, version, kind and length bound.
    pub fn decode(buf: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        if buf[0..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u16::from_le_bytes([buf[4], buf[5]]);
        if version != VERSION {
            return Err(WireError::VersionMismatch { got: version });
        }
        let raw_kind = u16::from_le_bytes([buf[6], buf[7]]);
        let kind = RecordKind::from_u16(raw_kind).ok_or(WireError::UnknownKind(raw_kind))?;
        let len = le32(&buf[8..12]);
        if len as usize > kind.max_payload() {
            return Err(WireError::Oversize { kind, len });
        }
        Ok(Header {
            kind,
            len,
            seq: le32(&buf[12..16]),
        })
    }
}

/// Tracks record counters in one direction of a stream.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sequence {
    next: u32,
}

impl Sequence {
    /// A sequence expecting record 0 first.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// Returns the counter for the next outgoing record and advances.
    pub fn take(&mut self) -> u32 {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        seq
    }

    /// Checks an incoming header's counter and advances.
    pub fn check(&mut self, header: &Header) -> Result<(), WireError> {
        if header.seq != self.next {
            return Err(WireError::OutOfOrder {
                expected: self.next,
                got: header.seq,
            });
        }
        self.next = self.next.wrapping_add(1);
        Ok(())
    }
}

/// Checks that a payload is exactly `len` bytes long.
pub(crate) fn exact_len(payload: &[u8], len: usize) -> Result<(), WireError> {
    match payload.len() {
        n if n < len => Err(WireError::Truncated),
        n if n > len => Err(WireError::TrailingBytes),
        _ => Ok(()),
    }
}

/// Reads a little-endian `u32` from a 4-byte slice.
pub(crate) fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads a little-endian `u64` from an 8-byte slice.
pub(crate) fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Writes `words` as consecutive little-endian `u64`s at the start of
/// `out`, which holds at least `8 * words.len()` bytes: the layout of the
/// fixed payloads made only of 64-bit fields.
pub(crate) fn put_le64s(out: &mut [u8], words: &[u64]) {
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
}

/// How a page travels in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageContent<'a> {
    /// The page's bytes follow the entry.
    Data(&'a [u8; PAGE_SIZE]),
    /// The page is all zeroes; no bytes follow.
    Zero,
    /// The page compressed with LZ4 (block format): decompressed, it must
    /// be exactly [`PAGE_SIZE`] bytes, which the receiver checks (the
    /// format only bounds the compressed length, see [`MAX_LZ4_LEN`]).
    Lz4(&'a [u8]),
    /// A page of zeroes but for 1 to [`MAX_SPARSE_WORDS`] nonzero 64-bit
    /// words: their (index, value) pairs, validated (indices below 512,
    /// strictly increasing; values nonzero). [`fill_sparse`] makes the
    /// page.
    Sparse(&'a [u8]),
    /// The page the receiver holds for this frame, from an earlier batch,
    /// with 1 to [`MAX_PATCH_WORDS`] of its 64-bit words replaced: their
    /// (index, value) pairs, validated (indices below 512, strictly
    /// increasing; values any). [`apply_patch`] applies them; a patch for a
    /// frame the receiver never received is the receiver's to refuse.
    Patch(&'a [u8]),
}

/// Most words a [`PageContent::Patch`] replaces.
pub const MAX_PATCH_WORDS: usize = 128;

/// Most nonzero words of a page sent as [`PageContent::Sparse`].
pub const MAX_SPARSE_WORDS: usize = 64;

/// Bytes of one (index, value) pair of a sparse page: a little-endian
/// `u16` word index and the word as a little-endian `u64`.
const SPARSE_PAIR_LEN: usize = 10;

/// Length of a sparse page's word count.
const SPARSE_COUNT_BYTES: usize = 2;

/// Bytes of one block of the page loops below: eight words, whose
/// differences (or values) are or-ed together, so that a block without a
/// difference (or without a nonzero word) costs one branch. Under an
/// emulator (QEMU's TCG) every branch ends a translated block, and these
/// scans run on every staged page inside the downtime (see
/// Documentation/selfmig/design.rst, "Compression").
const BLOCK: usize = 64;

/// The eight words of a [`BLOCK`]-byte block, in native byte order (so
/// that `to_ne_bytes` gives back the bytes as they were).
#[inline(always)]
fn block_words(block: &[u8]) -> [u64; 8] {
    let mut words = [0u64; 8];
    for (word, bytes) in words.iter_mut().zip(block.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        *word = u64::from_ne_bytes(w);
    }
    words
}

/// Calls `f` with the index and the value of every word of `new` that
/// differs from the same word of `base` (of a page of zeroes if `base` is
/// `None`), in order, until `f` returns `false`.
#[inline(always)]
fn each_changed_word(
    base: Option<&[u8; PAGE_SIZE]>,
    new: &[u8; PAGE_SIZE],
    mut f: impl FnMut(usize, u64) -> bool,
) {
    match base {
        Some(base) => {
            let blocks = new.chunks_exact(BLOCK).zip(base.chunks_exact(BLOCK));
            for (b, (block, old)) in blocks.enumerate() {
                if !visit_block(b, block, Some(old), &mut f) {
                    return;
                }
            }
        }
        None => {
            for (b, block) in new.chunks_exact(BLOCK).enumerate() {
                if !visit_block(b, block, None, &mut f) {
                    return;
                }
            }
        }
    }
}

/// One block of [`each_changed_word`]: block `b` of the new page, `old`
/// the base's (zeroes if `None`). Returns `false` once `f` has.
#[inline(always)]
fn visit_block(
    b: usize,
    block: &[u8],
    old: Option<&[u8]>,
    f: &mut impl FnMut(usize, u64) -> bool,
) -> bool {
    let words = block_words(block);
    let base = old.map_or([0; 8], block_words);
    let diff = words
        .iter()
        .zip(base.iter())
        .fold(0, |acc, (w, o)| acc | (w ^ o));
    // Opaque to the optimiser, which would otherwise turn the or-ed
    // differences back into eight compares and branches.
    if core::hint::black_box(diff) == 0 {
        return true;
    }
    // Read again (through pointers the optimiser cannot see through): a
    // block that differs is rare, and holding sixteen words across the
    // test costs every block stack traffic.
    let (block, old) = core::hint::black_box((block, old));
    let words = block_words(block);
    let base = old.map_or([0; 8], block_words);
    for (i, (&w, &o)) in words.iter().zip(base.iter()).enumerate() {
        if w != o && !f(b * 8 + i, w) {
            return false;
        }
    }
    true
}

/// Number of words `each_changed_word` reports, counted up to `max` + 1
/// (the scan stops there).
fn changed_words(base: Option<&[u8; PAGE_SIZE]>, new: &[u8; PAGE_SIZE], max: usize) -> usize {
    let mut n = 0;
    each_changed_word(base, new, |_, _| {
        n += 1;
        n <= max
    });
    n
}

/// Number of nonzero 64-bit words in `page`, counted up to
/// [`MAX_SPARSE_WORDS`] + 1 (a page with more is not sparse, and the scan
/// stops there). 0 means a zero page.
pub fn sparse_words(page: &[u8; PAGE_SIZE]) -> usize {
    changed_words(None, page, MAX_SPARSE_WORDS)
}

/// Writes the page a validated [`PageContent::Sparse`] describes into
/// `out`: zeroes, then each word at its index.
pub fn fill_sparse(pairs: &[u8], out: &mut [u8; PAGE_SIZE]) {
    out.fill(0);
    for pair in pairs.chunks_exact(SPARSE_PAIR_LEN) {
        let index = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
        if let Some(word) = out.get_mut(index * 8..index * 8 + 8) {
            word.copy_from_slice(&pair[2..SPARSE_PAIR_LEN]);
        }
    }
}

/// Checks the (index, value) pairs of a sparse page or a patch: indices
/// below 512 and strictly increasing, and for a sparse page (`nonzero`)
/// values nonzero. One encoding per page: the receiver can rely on the
/// bounds, and nothing is written twice.
fn check_pairs(pairs: &[u8], nonzero: bool) -> Result<(), WireError> {
    let mut next = 0usize;
    for pair in pairs.chunks_exact(SPARSE_PAIR_LEN) {
        let index = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
        if index < next || index >= PAGE_SIZE / 8 || (nonzero && pair[2..] == [0u8; 8]) {
            return Err(WireError::BadField);
        }
        next = index + 1;
    }
    Ok(())
}

/// Number of 64-bit words in which `new` differs from `old`, counted up to
/// [`MAX_PATCH_WORDS`] + 1 (more do not make a patch, and the scan stops
/// there).
pub fn patch_words(old: &[u8; PAGE_SIZE], new: &[u8; PAGE_SIZE]) -> usize {
    changed_words(Some(old), new, MAX_PATCH_WORDS)
}

/// Applies the pairs of a validated [`PageContent::Patch`] to `page`, the
/// page the receiver holds for the frame.
pub fn apply_patch(pairs: &[u8], page: &mut [u8; PAGE_SIZE]) {
    for pair in pairs.chunks_exact(SPARSE_PAIR_LEN) {
        let index = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
        if let Some(word) = page.get_mut(index * 8..index * 8 + 8) {
            word.copy_from_slice(&pair[2..SPARSE_PAIR_LEN]);
        }
    }
}

/// Most bytes of an LZ4-compressed page: with its 2-byte length, a
/// compressed entry is never larger than a plain one, so a batch's bound
/// ([`MAX_PAYLOAD`]) holds whatever mix it carries. A page that does not
/// compress below this travels as data.
pub const MAX_LZ4_LEN: usize = PAGE_SIZE - LZ4_LEN_BYTES;

/// Length of a compressed page's length field.
const LZ4_LEN_BYTES: usize = 2;

/// One page of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRef<'a> {
    /// Guest page frame number the page belongs at.
    pub pfn: u64,
    /// Its contents.
    pub content: PageContent<'a>,
}

/// Entry kind bits (the top four bits of an entry).
const ENTRY_DATA: u64 = 0;
/// Entry kind for a zero page.
const ENTRY_ZERO: u64 = 1;
/// Entry kind for an LZ4-compressed page.
const ENTRY_LZ4: u64 = 2;
/// Entry kind for a sparse page.
const ENTRY_SPARSE: u64 = 3;
/// Entry kind for a patch.
const ENTRY_PATCH: u64 = 4;
/// Shift of the kind bits in an entry.
const ENTRY_KIND_SHIFT: u32 = 60;

/// A decoded, fully validated page batch.
///
/// Payload layout: `round: u32, count: u32`, then `count` entries, each an
/// 8-byte word (`pfn | kind << 60`) followed by [`PAGE_SIZE`] bytes when the
/// kind is data, by a little-endian `u16` length (1 to [`MAX_LZ4_LEN`])
/// and that many bytes of LZ4 block when the kind is LZ4, or by a
/// little-endian `u16` count (1 to [`MAX_SPARSE_WORDS`]) and that many
/// 10-byte (index, value) pairs when the kind is sparse, or by a count (1
/// to [`MAX_PATCH_WORDS`]) and that many pairs when it is a patch.
#[derive(Debug, Clone, Copy)]
pub struct PageBatch<'a> {
    /// The pre-copy round the pages belong to.
    pub round: u32,
    count: u32,
    body: &'a [u8],
}

impl<'a> PageBatch<'a> {
    /// Validates a page batch payload: count, entry kinds, frame numbers and
    /// exact length. After this, [`PageBatch::pages`] cannot fail.
    pub fn decode(payload: &'a [u8]) -> Result<Self, WireError> {
        if payload.len() < BATCH_HEAD_LEN {
            return Err(WireError::Truncated);
        }
        let round = le32(&payload[0..4]);
        let count = le32(&payload[4..8]);
        if count == 0 || count as usize > MAX_BATCH_PAGES {
            return Err(WireError::BadBatchCount);
        }
        let body = &payload[BATCH_HEAD_LEN..];
        let mut off = 0usize;
        for _ in 0..count {
            if body.len() - off < ENTRY_LEN {
                return Err(WireError::Truncated);
            }
            let entry = le64(&body[off..]);
            off += ENTRY_LEN;
            if entry & ((1 << ENTRY_KIND_SHIFT) - 1) >= PFN_LIMIT {
                return Err(WireError::PfnOutOfRange);
            }
            match entry >> ENTRY_KIND_SHIFT {
                ENTRY_DATA => {
                    if body.len() - off < PAGE_SIZE {
                        return Err(WireError::Truncated);
                    }
                    off += PAGE_SIZE;
                }
                ENTRY_ZERO => {}
                ENTRY_LZ4 => {
                    if body.len() - off < LZ4_LEN_BYTES {
                        return Err(WireError::Truncated);
                    }
                    let len = usize::from(u16::from_le_bytes([body[off], body[off + 1]]));
                    off += LZ4_LEN_BYTES;
                    if len == 0 || len > MAX_LZ4_LEN {
                        return Err(WireError::BadField);
                    }
                    if body.len() - off < len {
                        return Err(WireError::Truncated);
                    }
                    off += len;
                }
                kind @ (ENTRY_SPARSE | ENTRY_PATCH) => {
                    if body.len() - off < SPARSE_COUNT_BYTES {
                        return Err(WireError::Truncated);
                    }
                    let count = usize::from(u16::from_le_bytes([body[off], body[off + 1]]));
                    off += SPARSE_COUNT_BYTES;
                    let max = match kind {
                        ENTRY_SPARSE => MAX_SPARSE_WORDS,
                        _ => MAX_PATCH_WORDS,
                    };
                    if count == 0 || count > max {
                        return Err(WireError::BadField);
                    }
                    let len = count * SPARSE_PAIR_LEN;
                    if body.len() - off < len {
                        return Err(WireError::Truncated);
                    }
                    check_pairs(&body[off..off + len], kind == ENTRY_SPARSE)?;
                    off += len;
                }
                _ => return Err(WireError::BadPageKind),
            }
        }
        if off != body.len() {
            return Err(WireError::TrailingBytes);
        }
        Ok(Self { round, count, body })
    }

    /// Number of pages in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch is empty (never true for a decoded batch).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The pages, in order.
    pub fn pages(&self) -> PageIter<'a> {
        PageIter {
            body: self.body,
            left: self.count,
        }
    }
}

/// Iterator over the pages of a validated [`PageBatch`].
#[derive(Debug, Clone)]
pub struct PageIter<'a> {
    body: &'a [u8],
    left: u32,
}

impl<'a> Iterator for PageIter<'a> {
    type Item = PageRef<'a>;

    fn next(&mut self) -> Option<PageRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The batch was validated by `PageBatch::decode`: every slice below
        // is in bounds.
        let entry = le64(self.body);
        self.body = &self.body[ENTRY_LEN..];
        let pfn = entry & ((1 << ENTRY_KIND_SHIFT) - 1);
        let content = match entry >> ENTRY_KIND_SHIFT {
            ENTRY_ZERO => PageContent::Zero,
            ENTRY_LZ4 => {
                let len = usize::from(u16::from_le_bytes([self.body[0], self.body[1]]));
                let (block, rest) = self.body[LZ4_LEN_BYTES..].split_at(len);
                self.body = rest;
                PageContent::Lz4(block)
            }
            kind @ (ENTRY_SPARSE | ENTRY_PATCH) => {
                let count = usize::from(u16::from_le_bytes([self.body[0], self.body[1]]));
                let (pairs, rest) =
                    self.body[SPARSE_COUNT_BYTES..].split_at(count * SPARSE_PAIR_LEN);
                self.body = rest;
                match kind {
                    ENTRY_SPARSE => PageContent::Sparse(pairs),
                    _ => PageContent::Patch(pairs),
                }
            }
            _ => {
                let (page, rest) = self.body.split_at(PAGE_SIZE);
                self.body = rest;
                PageContent::Data(page.try_into().ok()?)
            }
        };
        Some(PageRef { pfn, content })
    }
}

/// Builds a page batch record (header and payload) in a caller's buffer.
#[derive(Debug)]
pub struct BatchWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: u32,
    last_data: Option<usize>,
}

impl<'b> BatchWriter<'b> {
    /// Starts a batch for `round` in `buf`, which must hold at least
    /// [`HEADER_LEN`] + [`MAX_PAYLOAD`] bytes.
    pub fn new(buf: &'b mut [u8], round: u32) -> Result<Self, WireError> {
        if buf.len() < HEADER_LEN + MAX_PAYLOAD {
            return Err(WireError::NoSpace);
        }
        buf[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&round.to_le_bytes());
        Ok(Self {
            buf,
            len: HEADER_LEN + BATCH_HEAD_LEN,
            count: 0,
            last_data: None,
        })
    }

    /// Whether the batch has room for no more pages.
    pub fn is_full(&self) -> bool {
        self.count as usize == MAX_BATCH_PAGES
    }

    /// Number of pages added so far.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Appends an entry word.
    fn push_entry(&mut self, pfn: u64, kind: u64) -> Result<(), WireError> {
        if self.is_full() {
            return Err(WireError::NoSpace);
        }
        if pfn >= PFN_LIMIT {
            return Err(WireError::PfnOutOfRange);
        }
        let word = pfn | (kind << ENTRY_KIND_SHIFT);
        self.buf[self.len..self.len + ENTRY_LEN].copy_from_slice(&word.to_le_bytes());
        self.len += ENTRY_LEN;
        self.count += 1;
        Ok(())
    }

    /// Appends a page with its contents.
    pub fn push_data(&mut self, pfn: u64, page: &[u8; PAGE_SIZE]) -> Result<(), WireError> {
        self.push_entry(pfn, ENTRY_DATA)?;
        self.buf[self.len..self.len + PAGE_SIZE].copy_from_slice(page);
        self.last_data = Some(self.len);
        self.len += PAGE_SIZE;
        Ok(())
    }

    /// The bytes of the last data page added, as they will be sent (a
    /// concurrent writer may have changed the source page meanwhile).
    pub fn last_data(&self) -> Option<&[u8; PAGE_SIZE]> {
        let off = self.last_data?;
        self.buf[off..off + PAGE_SIZE].try_into().ok()
    }

    /// Appends a page that is all zeroes.
    pub fn push_zero(&mut self, pfn: u64) -> Result<(), WireError> {
        self.push_entry(pfn, ENTRY_ZERO)
    }

    /// Appends `page`, compressed by `compress` if that makes it smaller.
    ///
    /// `compress(page, out)` writes an LZ4 block of `page` into `out`
    /// ([`MAX_LZ4_LEN`] bytes) and returns its length, or 0 when it does
    /// not fit; the page then travels as data. Returns whether it was
    /// compressed.
    pub fn push_compressed(
        &mut self,
        pfn: u64,
        page: &[u8; PAGE_SIZE],
        compress: impl FnOnce(&[u8; PAGE_SIZE], &mut [u8]) -> usize,
    ) -> Result<bool, WireError> {
        if self.is_full() {
            return Err(WireError::NoSpace);
        }
        let at = self.len + ENTRY_LEN + LZ4_LEN_BYTES;
        let len = compress(page, &mut self.buf[at..at + MAX_LZ4_LEN]);
        if len == 0 || len > MAX_LZ4_LEN {
            self.push_data(pfn, page)?;
            return Ok(false);
        }
        self.push_entry(pfn, ENTRY_LZ4)?;
        self.buf[self.len..self.len + LZ4_LEN_BYTES].copy_from_slice(&(len as u16).to_le_bytes());
        self.len += LZ4_LEN_BYTES + len;
        self.last_data = None;
        Ok(true)
    }

    /// Appends `page` as a sparse page if it has 1 to [`MAX_SPARSE_WORDS`]
    /// nonzero words (see [`sparse_words`]); returns whether it did.
    pub fn push_sparse(&mut self, pfn: u64, page: &[u8; PAGE_SIZE]) -> Result<bool, WireError> {
        self.push_pairs(pfn, ENTRY_SPARSE, MAX_SPARSE_WORDS, None, page)
    }

    /// Appends `new` as a patch of `old`, the page the receiver holds for
    /// `pfn`, if they differ in 1 to `max` words (`max` at most
    /// [`MAX_PATCH_WORDS`]; see [`patch_words`]); returns whether it did.
    pub fn push_patch(
        &mut self,
        pfn: u64,
        old: &[u8; PAGE_SIZE],
        new: &[u8; PAGE_SIZE],
        max: usize,
    ) -> Result<bool, WireError> {
        self.push_pairs(pfn, ENTRY_PATCH, max.min(MAX_PATCH_WORDS), Some(old), new)
    }

    /// Appends an entry of `kind` with the (index, value) pairs of the
    /// words in which `new` differs from `base` (from a page of zeroes,
    /// `None`: a sparse page; from the receiver's page: a patch), if there
    /// are 1 to `max` of them (`max` at most [`MAX_PATCH_WORDS`]); returns
    /// whether it did. One scan: the pairs are written as they are found,
    /// and taken back if there are too many.
    fn push_pairs(
        &mut self,
        pfn: u64,
        kind: u64,
        max: usize,
        base: Option<&[u8; PAGE_SIZE]>,
        new: &[u8; PAGE_SIZE],
    ) -> Result<bool, WireError> {
        let (len0, count0) = (self.len, self.count);
        self.push_entry(pfn, kind)?;
        let at = self.len;
        // At most `max` + 1 pairs (the scan stops there): within the room
        // an entry has (a page).
        let (buf, mut len, mut pairs) = (&mut *self.buf, at + SPARSE_COUNT_BYTES, 0usize);
        each_changed_word(base, new, |index, word| {
            pairs += 1;
            if pairs > max {
                return false;
            }
            let pair = &mut buf[len..len + SPARSE_PAIR_LEN];
            pair[..2].copy_from_slice(&(index as u16).to_le_bytes());
            pair[2..].copy_from_slice(&word.to_ne_bytes());
            len += SPARSE_PAIR_LEN;
            true
        });
        if pairs == 0 || pairs > max {
            (self.len, self.count) = (len0, count0);
            return Ok(false);
        }
        self.buf[at..at + SPARSE_COUNT_BYTES].copy_from_slice(&(pairs as u16).to_le_bytes());
        self.len = len;
        self.last_data = None;
        Ok(true)
    }

    /// Writes the header and returns the whole record's bytes.
    pub fn finish(mut self, seq: u32) -> Result<&'b [u8], WireError> {
        let len = self.finish_len(seq)?;
        let buf: &'b [u8] = self.buf;
        Ok(&buf[..len])
    }

    /// The buffer the writer builds in (the finished record at its start).
    pub fn buffer(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Writes the header and returns the whole record's length, leaving
    /// the record at the start of the buffer the writer was given (for a
    /// caller that seals it in place).
    pub fn finish_len(&mut self, seq: u32) -> Result<usize, WireError> {
        if self.count == 0 {
            return Err(WireError::BadBatchCount);
        }
        self.buf[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&self.count.to_le_bytes());
        let header = Header {
            kind: RecordKind::PageBatch,
            len: (self.len - HEADER_LEN) as u32,
            seq,
        };
        let mut hdr = [0u8; HEADER_LEN];
        header.encode(&mut hdr);
        self.buf[..HEADER_LEN].copy_from_slice(&hdr);
        Ok(self.len)
    }
}

/// Writes a whole record with a small payload into `out`; returns its length.
pub fn encode_record(
    kind: RecordKind,
    seq: u32,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, WireError> {
    if payload.len() > kind.max_payload() {
        return Err(WireError::Oversize {
            kind,
            len: payload.len() as u32,
        });
    }
    let total = HEADER_LEN + payload.len();
    if out.len() < total {
        return Err(WireError::NoSpace);
    }
    let mut hdr = [0u8; HEADER_LEN];
    Header {
        kind,
        len: payload.len() as u32,
        seq,
    }
    .encode(&mut hdr);
    out[..HEADER_LEN].copy_from_slice(&hdr);
    out[HEADER_LEN..total].copy_from_slice(payload);
    Ok(total)
}

/// Why a target refused a source's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Refusal {
    /// The target accepts the migration.
    Accepted = 0,
    /// The target is busy with another migration.
    Busy = 1,
    /// The machine descriptions differ (see the target's log for which field).
    MachineMismatch = 2,
    /// The hello was malformed.
    Malformed = 3,
}

impl Refusal {
    /// The refusal for a wire value; unknown values read as malformed.
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => Refusal::Accepted,
            1 => Refusal::Busy,
            2 => Refusal::MachineMismatch,
            _ => Refusal::Malformed,
        }
    }
}

/// A decoded hello reply: the verdict and, on mismatch, which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloReply {
    /// Verdict.
    pub status: Refusal,
    /// Detail: on acceptance, the target's share of a downtime in
    /// microseconds as its rehearsal measured it (0: not measured); on a
    /// mismatch, a [`super::machine::Mismatch`] value.
    pub detail: u32,
}

impl HelloReply {
    /// Encoded length.
    pub const ENCODED_LEN: usize = 8;

    /// Encodes the reply payload.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0..4].copy_from_slice(&(self.status as u32).to_le_bytes());
        out[4..8].copy_from_slice(&self.detail.to_le_bytes());
        out
    }

    /// Decodes a reply payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        exact_len(payload, Self::ENCODED_LEN)?;
        Ok(Self {
            status: Refusal::from_u32(le32(&payload[0..4])),
            detail: le32(&payload[4..8]),
        })
    }
}

/// Decodes an abort payload into its reason code.
pub fn decode_abort(payload: &[u8]) -> Result<u32, WireError> {
    exact_len(payload, 4)?;
    Ok(le32(payload))
}

/// Round number of the pages copied at the checkpoint.
pub const FINAL_ROUND: u32 = u32::MAX;

/// Abort reason: the source gave up (its log says why).
pub const ABORT_SOURCE_FAILED: u32 = 1;
/// Abort reason: the target cannot restore images yet.
pub const ABORT_RESTORE_UNSUPPORTED: u32 = 2;
/// Abort reason: a restored page did not match its checkpoint hash.
pub const ABORT_VERIFY_FAILED: u32 = 3;
/// Abort reason: the target failed (its log says why).
pub const ABORT_TARGET_FAILED: u32 = 4;

/// Most hashes in one [`RecordKind::VerifyHashes`] record.
pub const MAX_VERIFY_HASHES: usize = 16384;

/// Bytes before the hashes of a [`RecordKind::VerifyHashes`] record.
pub const VERIFY_HEAD_LEN: usize = 16;

/// The checkpoint hashes of a run of consecutive frames (`verify=1`).
///
/// Layout (little-endian): first frame `u64`, count `u32`, zero `u32`, then
/// `count` hashes of 8 bytes. The hash is xxh64 (seed 0) of the page as it
/// was at the checkpoint, with 0 and `u64::MAX` remapped to 1 and
/// `u64::MAX - 1`; 0 means "not part of the image, do not check" (free
/// pages, the migration's own buffers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyHashes<'a> {
    /// Frame of the first hash.
    pub first_pfn: u64,
    hashes: &'a [u8],
}

impl<'a> VerifyHashes<'a> {
    /// Decodes and checks a payload.
    pub fn decode(payload: &'a [u8]) -> Result<Self, WireError> {
        if payload.len() < VERIFY_HEAD_LEN {
            return Err(WireError::Truncated);
        }
        let first_pfn = le64(&payload[0..]);
        let count = le32(&payload[8..]) as usize;
        if le32(&payload[12..]) != 0 || count == 0 || count > MAX_VERIFY_HASHES {
            return Err(WireError::BadField);
        }
        let hashes = &payload[VERIFY_HEAD_LEN..];
        match hashes.len().cmp(&(count * 8)) {
            core::cmp::Ordering::Less => return Err(WireError::Truncated),
            core::cmp::Ordering::Greater => return Err(WireError::TrailingBytes),
            core::cmp::Ordering::Equal => {}
        }
        match first_pfn.checked_add(count as u64) {
            Some(end) if end <= PFN_LIMIT => {}
            _ => return Err(WireError::PfnOutOfRange),
        }
        Ok(Self { first_pfn, hashes })
    }

    /// Encodes the hashes of frames `first_pfn..` into `out`; returns the
    /// payload length.
    pub fn encode(first_pfn: u64, hashes: &[u64], out: &mut [u8]) -> Result<usize, WireError> {
        if hashes.is_empty() || hashes.len() > MAX_VERIFY_HASHES {
            return Err(WireError::BadField);
        }
        let len = VERIFY_HEAD_LEN + hashes.len() * 8;
        if out.len() < len {
            return Err(WireError::NoSpace);
        }
        out[0..8].copy_from_slice(&first_pfn.to_le_bytes());
        out[8..12].copy_from_slice(&(hashes.len() as u32).to_le_bytes());
        out[12..16].copy_from_slice(&0u32.to_le_bytes());
        for (chunk, h) in out[VERIFY_HEAD_LEN..len].chunks_exact_mut(8).zip(hashes) {
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        Ok(len)
    }

    /// Number of hashes.
    pub fn len(&self) -> usize {
        self.hashes.len() / 8
    }

    /// Whether the record holds no hash (never true of a decoded record).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Every (frame, hash) pair, zero hashes included.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let first = self.first_pfn;
        self.hashes
            .chunks_exact(8)
            .enumerate()
            .map(move |(i, h)| (first + i as u64, le64(h)))
    }
}

/// The source's side of the downtime: the payload of a
/// [`RecordKind::Commit`] record (32 bytes, little-endian). Every field is
/// nanoseconds since the checkpoint began, by the source's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitInfo {
    /// The guest was stopped (devices frozen, registers and changed pages
    /// saved) until here.
    pub stopped_ns: u64,
    /// The staged pages, hashes and CPU context were sent.
    pub sent_ns: u64,
    /// The target's `Complete` arrived.
    pub complete_ns: u64,
    /// The commit is being sent.
    pub commit_ns: u64,
}

impl CommitInfo {
    /// Encoded length.
    pub const ENCODED_LEN: usize = 32;

    /// Encodes the payload.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        put_le64s(
            &mut out,
            &[
                self.stopped_ns,
                self.sent_ns,
                self.complete_ns,
                self.commit_ns,
            ],
        );
        out
    }

    /// Decodes a payload of exactly [`CommitInfo::ENCODED_LEN`] bytes; the
    /// times must not decrease.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        exact_len(payload, Self::ENCODED_LEN)?;
        let c = Self {
            stopped_ns: le64(&payload[0..]),
            sent_ns: le64(&payload[8..]),
            complete_ns: le64(&payload[16..]),
            commit_ns: le64(&payload[24..]),
        };
        if c.stopped_ns > c.sent_ns || c.sent_ns > c.complete_ns || c.complete_ns > c.commit_ns {
            return Err(WireError::BadField);
        }
        Ok(c)
    }
}

/// What the target needs to jump into the image: the payload of a
/// [`RecordKind::CpuContext`] record (48 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResumeInfo {
    /// The source's CR3 at the checkpoint.
    pub cr3: u64,
    /// Kernel virtual address of the source's resume entry.
    pub resume_va: u64,
    /// Page frame of the page holding the resume entry.
    pub resume_pfn: u64,
    /// Number of pages the source copied at the checkpoint.
    pub staged_pages: u64,
    /// Number of nonzero hashes sent in [`RecordKind::VerifyHashes`]
    /// records before this one; 0 when the source did not ask for
    /// verification.
    pub verify_pages: u64,
    /// Frame of the page, not part of the image, where the target leaves
    /// its [`super::handoff::Handoff`] for the resumed image.
    pub handoff_pfn: u64,
}

impl ResumeInfo {
    /// Encoded length.
    pub const ENCODED_LEN: usize = 48;

    /// Encodes the payload.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        put_le64s(
            &mut out,
            &[
                self.cr3,
                self.resume_va,
                self.resume_pfn,
                self.staged_pages,
                self.verify_pages,
                self.handoff_pfn,
            ],
        );
        out
    }

    /// Decodes a payload of exactly [`ResumeInfo::ENCODED_LEN`] bytes.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        exact_len(payload, Self::ENCODED_LEN)?;
        Ok(Self {
            cr3: le64(&payload[0..]),
            resume_va: le64(&payload[8..]),
            resume_pfn: le64(&payload[16..]),
            staged_pages: le64(&payload[24..]),
            verify_pages: le64(&payload[32..]),
            handoff_pfn: le64(&payload[40..]),
        })
    }
}
