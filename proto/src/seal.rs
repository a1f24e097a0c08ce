// SPDX-License-Identifier: GPL-2.0

//! The sealed stream: every record after the token, in both directions,
//! encrypted and authenticated with AES-256-GCM.
//!
//! A sealed record is an ordinary record whose kind has [`KIND_SEALED`] set
//! and whose payload is the ciphertext followed by the 16-byte tag; the
//! header's length counts the tag. Its 16 header bytes are the associated
//! data, so kind, length and record counter are authenticated too. The
//! nonce is a direction label and the number of records sealed before in
//! that direction:
//!
//! ```text
//! nonce  = label (4 bytes: "S2T:" source to target, "T2S:" target to source)
//!          || counter (u64 little-endian, 0 for the first sealed record)
//! aad    = the 16-byte record header as sent (kind | 0x8000, len incl. tag)
//! payload = AES-256-GCM(stream key, nonce, aad, plaintext) || tag
//! ```
//!
//! The receiver derives the nonce from its own count, never from the wire,
//! so a flipped bit, a reordered, replayed or dropped record, a record cut
//! short, or one reflected back from the other direction fails to open.
//! After a failure the [`Opener`] refuses everything: the stream is dead.
//!
//! The stream key is not the token's session key itself but
//! HMAC-SHA-256(session key, "selfmig stream 1" || source salt || target
//! salt), with a fresh random salt from each side per connection
//! ([`stream_key`]). A recorded session therefore cannot be replayed into
//! another connection, and a retry with the same token never reuses a
//! (key, nonce) pair.

use super::crypto::{hmac_sha256, scrub, Aead, CryptoError, Hash256, KEY_LEN, NONCE_LEN, TAG_LEN};
use super::wire::{Header, RecordKind, WireError, HEADER_LEN, MAGIC, VERSION};

/// Bit of the header's kind field that marks a sealed record.
pub const KIND_SEALED: u16 = 0x8000;

/// Length of each side's per-connection salt.
pub const SALT_LEN: usize = 16;

/// Label mixed into the stream key derivation.
const STREAM_KEY_LABEL: &[u8; 16] = b"selfmig stream 1";

/// Which way a record travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the migrating guest to the loader.
    SourceToTarget,
    /// From the loader to the migrating guest.
    TargetToSource,
}

impl Direction {
    /// The 4-byte nonce label.
    pub fn label(self) -> [u8; 4] {
        match self {
            Direction::SourceToTarget => *b"S2T:",
            Direction::TargetToSource => *b"T2S:",
        }
    }
}

/// The nonce of the `counter`-th sealed record in direction `dir`.
pub fn stream_nonce(dir: Direction, counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&dir.label());
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// The key that seals one connection's stream:
/// HMAC-SHA-256(session_key, "selfmig stream 1" || source_salt ||
/// target_salt).
pub fn stream_key<H: Hash256>(
    hash: &H,
    session_key: &[u8; KEY_LEN],
    source_salt: &[u8; SALT_LEN],
    target_salt: &[u8; SALT_LEN],
) -> [u8; KEY_LEN] {
    // The key and message are shorter than HMAC's limits, so this cannot
    // fail; a zero key would only ever fail authentication.
    hmac_sha256(
        hash,
        session_key,
        &[STREAM_KEY_LABEL, source_salt, target_salt],
    )
    .unwrap_or([0; KEY_LEN])
}

/// Why a record could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The header is not a valid record header (magic, version, kind,
    /// length bound).
    Header(WireError),
    /// A plaintext record where a sealed one must be.
    NotSealed,
    /// The payload is shorter than its header says, or than a tag.
    Truncated,
    /// The payload is longer than its header says.
    TrailingBytes,
    /// The tag does not verify: altered, reordered, replayed, from the
    /// other direction, or under another key.
    Auth,
    /// The record counter would wrap (2^64 - 1 records).
    Exhausted,
    /// The buffer has no room for the tag.
    NoSpace,
    /// The crypto backend failed.
    Crypto,
    /// An earlier record failed: the stream is dead.
    Failed,
}

impl SealError {
    /// A short, stable description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            SealError::Header(e) => e.as_str(),
            SealError::NotSealed => "record not sealed",
            SealError::Truncated => "sealed record truncated",
            SealError::TrailingBytes => "sealed record has trailing bytes",
            SealError::Auth => "record failed authentication",
            SealError::Exhausted => "record counter exhausted",
            SealError::NoSpace => "no room for the tag",
            SealError::Crypto => "crypto backend failed",
            SealError::Failed => "stream already failed",
        }
    }

    /// The (positive) errno a kernel caller reports.
    pub fn errno(&self) -> i32 {
        use super::uapi::{EBADMSG, ENOSPC, EPROTO};
        match self {
            SealError::Header(e) => e.errno(),
            SealError::NotSealed | SealError::Failed => EPROTO,
            SealError::Truncated | SealError::TrailingBytes | SealError::Auth => EBADMSG,
            SealError::Exhausted => EOVERFLOW,
            SealError::NoSpace => ENOSPC,
            SealError::Crypto => super::token::EIO,
        }
    }
}

/// Value too large (`include/uapi/asm-generic/errno.h`): the record
/// counter is exhausted.
pub const EOVERFLOW: i32 = 75;

/// Encodes the header of a sealed record: `header.len` is the payload
/// length on the wire, tag included.
pub fn encode_sealed_header(header: &Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    header.encode(&mut out);
    let kind = (header.kind as u16) | KIND_SEALED;
    out[6..8].copy_from_slice(&kind.to_le_bytes());
    out
}

/// Decodes and checks the header of a sealed record: magic, version, the
/// sealed bit, the kind, and the length, which must hold a tag and no more
/// than the kind's bound plus the tag. The returned header's `len` is the
/// payload length on the wire, tag included: read exactly that many bytes.
pub fn decode_sealed_header(raw: &[u8; HEADER_LEN]) -> Result<Header, SealError> {
    let raw_kind = u16::from_le_bytes([raw[6], raw[7]]);
    if raw_kind & KIND_SEALED == 0 {
        // Say "not sealed" only of an otherwise valid record.
        return Err(match Header::decode(raw) {
            Ok(_) => SealError::NotSealed,
            Err(e) => SealError::Header(e),
        });
    }
    if raw[0..4] != MAGIC {
        return Err(SealError::Header(WireError::BadMagic));
    }
    let version = u16::from_le_bytes([raw[4], raw[5]]);
    if version != VERSION {
        return Err(SealError::Header(WireError::VersionMismatch {
            got: version,
        }));
    }
    let kind_val = raw_kind & !KIND_SEALED;
    let kind = RecordKind::from_u16(kind_val)
        .ok_or(SealError::Header(WireError::UnknownKind(kind_val)))?;
    let len = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
    if (len as usize) < TAG_LEN {
        return Err(SealError::Truncated);
    }
    if len as usize - TAG_LEN > kind.max_payload() {
        return Err(SealError::Header(WireError::Oversize { kind, len }));
    }
    Ok(Header {
        kind,
        len,
        seq: u32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]),
    })
}

/// Seals the records of one direction, counting them.
#[derive(Debug, Clone)]
pub struct Sealer {
    dir: Direction,
    counter: u64,
    failed: bool,
}

impl Sealer {
    /// A sealer for direction `dir`, at record 0.
    pub const fn new(dir: Direction) -> Self {
        Self {
            dir,
            counter: 0,
            failed: false,
        }
    }

    /// Records sealed so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Seals, in place, the plaintext record in `record[..plain_len]` (a
    /// header and its payload, as [`super::wire::encode_record`] or
    /// [`super::wire::BatchWriter`] build them): sets the sealed bit and the
    /// new length in the header, encrypts the payload and appends the tag.
    /// `record` must have [`TAG_LEN`] bytes of room after the plaintext.
    /// Returns the sealed record's length.
    ///
    /// A sealer that failed refuses to seal again: a half-sealed record may
    /// have consumed its nonce.
    pub fn seal<A: Aead>(
        &mut self,
        aead: &A,
        record: &mut [u8],
        plain_len: usize,
    ) -> Result<usize, SealError> {
        if self.failed {
            return Err(SealError::Failed);
        }
        if plain_len < HEADER_LEN || plain_len > record.len() {
            return Err(SealError::Truncated);
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&record[..HEADER_LEN]);
        let header = Header::decode(&raw).map_err(SealError::Header)?;
        match (header.len as usize).cmp(&(plain_len - HEADER_LEN)) {
            core::cmp::Ordering::Greater => return Err(SealError::Truncated),
            core::cmp::Ordering::Less => return Err(SealError::TrailingBytes),
            core::cmp::Ordering::Equal => {}
        }
        let sealed_len = plain_len + TAG_LEN;
        if record.len() < sealed_len {
            return Err(SealError::NoSpace);
        }
        if self.counter == u64::MAX {
            return Err(SealError::Exhausted);
        }
        let aad = encode_sealed_header(&Header {
            len: header.len + TAG_LEN as u32,
            ..header
        });
        let nonce = stream_nonce(self.dir, self.counter);
        let mut tag = [0u8; TAG_LEN];
        if aead
            .seal(&nonce, &aad, &mut record[HEADER_LEN..plain_len], &mut tag)
            .is_err()
        {
            self.failed = true;
            scrub(&mut record[HEADER_LEN..plain_len]);
            return Err(SealError::Crypto);
        }
        record[..HEADER_LEN].copy_from_slice(&aad);
        record[plain_len..sealed_len].copy_from_slice(&tag);
        self.counter += 1;
        Ok(sealed_len)
    }
}

/// Opens the records of one direction, counting them.
#[derive(Debug, Clone)]
pub struct Opener {
    dir: Direction,
    counter: u64,
    failed: bool,
}

impl Opener {
    /// An opener for direction `dir`, expecting record 0.
    pub const fn new(dir: Direction) -> Self {
        Self {
            dir,
            counter: 0,
            failed: false,
        }
    }

    /// Records opened so far.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Whether a record failed: the stream is dead.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Opens, in place, a sealed record received as `raw` (its header) and
    /// `payload` (exactly the length the header states, tag included).
    /// Returns the header of the plaintext record (kind, plaintext length,
    /// counter) and the plaintext, a prefix of `payload`.
    ///
    /// Any failure kills the opener: later records are refused with
    /// [`SealError::Failed`].
    pub fn open<'p, A: Aead>(
        &mut self,
        aead: &A,
        raw: &[u8; HEADER_LEN],
        payload: &'p mut [u8],
    ) -> Result<(Header, &'p mut [u8]), SealError> {
        if self.failed {
            return Err(SealError::Failed);
        }
        let mut header = match self.check(raw, payload.len()) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let plain_len = payload.len() - TAG_LEN;
        let (plain, tag_bytes) = payload.split_at_mut(plain_len);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        let nonce = stream_nonce(self.dir, self.counter);
        if let Err(e) = aead.open(&nonce, raw, plain, &tag) {
            self.failed = true;
            scrub(plain);
            return Err(match e {
                CryptoError::Auth => SealError::Auth,
                CryptoError::Backend => SealError::Crypto,
            });
        }
        self.counter += 1;
        header.len = plain_len as u32;
        Ok((header, plain))
    }

    /// Checks everything but the tag: the header, the payload's length
    /// against it, the counter. Returns the header (wire length).
    fn check(&self, raw: &[u8; HEADER_LEN], payload_len: usize) -> Result<Header, SealError> {
        let header = decode_sealed_header(raw)?;
        match payload_len.cmp(&(header.len as usize)) {
            core::cmp::Ordering::Less => return Err(SealError::Truncated),
            core::cmp::Ordering::Greater => return Err(SealError::TrailingBytes),
            core::cmp::Ordering::Equal => {}
        }
        if self.counter == u64::MAX {
            return Err(SealError::Exhausted);
        }
        Ok(header)
    }
}
