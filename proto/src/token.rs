// SPDX-License-Identifier: GPL-2.0

//! Admission tokens: what a provider grants a migrating guest, sealed under
//! the provider's key.
//!
//! A token is a fixed 160-byte string. A 24-byte plaintext header says what
//! it is and how long; it is the AEAD's associated data, so it cannot be
//! altered either. The body is sealed with AES-GCM under the provider key:
//!
//! ```text
//! offset size field
//!      0    4 magic           "SMTK"
//!      4    2 version         TOKEN_VERSION
//!      6    2 key_id          key_id() of the provider key
//!      8    4 total_len       TOKEN_LEN
//!     12   12 nonce           random, never reused under one key
//!     24  120 body (sealed):
//!             0   16 id              random, single use
//!            16    8 expiry          unix seconds; valid while now < expiry
//!            24    8 granted_pages   most distinct frames the image may use
//!            32    4 granted_vcpus
//!            36    4 unit_pages      pages one payment link buys
//!            40    8 price_per_unit  opaque, for the provider's books
//!            48   32 anchor          w0 = H^chain_len(seed)
//!            80    4 chain_len       links the payer holds
//!            84    4 flags           zero
//!            88   32 session_key     keys the stream (with both salts)
//!    144   16 tag
//! ```
//!
//! [`Token::open`] reads and checks the header, and nothing else, until the
//! tag verifies; only then is a single body byte interpreted. Checking a
//! guest against the grant (is it bigger than what was granted?) is
//! admission's business, not the token's.

use super::crypto::{hmac_sha256, scrub, Aead, CryptoError, Hash256, KEY_LEN, NONCE_LEN, TAG_LEN};
use super::wire::{le32, le64};

/// First four bytes of every token.
pub const TOKEN_MAGIC: [u8; 4] = *b"SMTK";

/// Version of the token format.
pub const TOKEN_VERSION: u16 = 1;

/// Length of the plaintext header (the associated data).
pub const TOKEN_HEADER_LEN: usize = 24;

/// Length of the sealed body, tag excluded.
pub const TOKEN_BODY_LEN: usize = 120;

/// Length of a whole token.
pub const TOKEN_LEN: usize = TOKEN_HEADER_LEN + TOKEN_BODY_LEN + TAG_LEN;

/// Length of a token id.
pub const TOKEN_ID_LEN: usize = 16;

/// Default payment unit: 64 MiB of 4 KiB pages.
pub const DEFAULT_UNIT_PAGES: u32 = 16384;

/// Longest payment chain a token may carry. Bounds the hashing one payment
/// can cost the loader (one hash per unit paid at once).
pub const MAX_CHAIN_LEN: u32 = 1 << 20;

// A token must fit where the control paths carry one.
const _: () = assert!(TOKEN_LEN <= super::uapi::MAX_TOKEN_LEN);

/// Why a token was refused (or could not be minted).
///
/// The numeric codes are stable: they travel to the source in the token
/// reply and appear in logs. They share one number space with admission's
/// refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TokenError {
    /// Shorter than its header, or than the length the header states.
    Truncated = 101,
    /// The first four bytes are not [`TOKEN_MAGIC`].
    BadMagic = 102,
    /// A token format this loader does not know.
    BadVersion = 103,
    /// The header's length is not [`TOKEN_LEN`], or bytes follow the token.
    BadLength = 104,
    /// Sealed under another provider key than the loader's.
    UnknownKey = 105,
    /// The tag does not verify: forged or altered.
    Forged = 106,
    /// Its expiry has passed.
    Expired = 107,
    /// It grants no pages, no vCPUs, or no payment (zero unit or chain).
    NoGrant = 108,
    /// Authentic but malformed: nonzero flags or an overlong chain.
    Malformed = 109,
    /// The crypto backend failed.
    Crypto = 110,
    /// The output buffer is too small (minting).
    NoSpace = 111,
}

impl TokenError {
    /// The stable reason code.
    pub fn code(&self) -> u32 {
        *self as u32
    }

    /// A short, stable description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenError::Truncated => "token truncated",
            TokenError::BadMagic => "not a token (bad magic)",
            TokenError::BadVersion => "unknown token version",
            TokenError::BadLength => "token has the wrong length",
            TokenError::UnknownKey => "token sealed under another provider key",
            TokenError::Forged => "token forged or altered",
            TokenError::Expired => "token expired",
            TokenError::NoGrant => "token grants nothing",
            TokenError::Malformed => "token malformed",
            TokenError::Crypto => "crypto backend failed",
            TokenError::NoSpace => "buffer too small for a token",
        }
    }

    /// The (positive) errno a kernel caller reports.
    pub fn errno(&self) -> i32 {
        use super::uapi::{EBADMSG, EINVAL, ENOKEY, ENOSPC, EPROTONOSUPPORT};
        match self {
            TokenError::Truncated
            | TokenError::BadMagic
            | TokenError::BadLength
            | TokenError::Malformed => EBADMSG,
            TokenError::BadVersion => EPROTONOSUPPORT,
            TokenError::UnknownKey => ENOKEY,
            TokenError::Forged => EKEYREJECTED,
            TokenError::Expired => EKEYEXPIRED,
            TokenError::NoGrant => EINVAL,
            TokenError::Crypto => EIO,
            TokenError::NoSpace => ENOSPC,
        }
    }
}

/// I/O error (`include/uapi/asm-generic/errno-base.h`).
pub const EIO: i32 = 5;
/// Key has expired (`include/uapi/asm-generic/errno.h`).
pub const EKEYEXPIRED: i32 = 127;
/// Key has been revoked: a token already used.
pub const EKEYREVOKED: i32 = 128;
/// Key was rejected by service: a forged token.
pub const EKEYREJECTED: i32 = 129;

/// The key id of a provider key: the first two bytes (little-endian) of
/// HMAC-SHA-256(key, "selfmig key id"). `None` for a key longer than 64
/// bytes (AES keys are 16, 24 or 32).
///
/// The id lets a loader tell "sealed under another key" from "forged"
/// without trying to open the token, and lets a provider rotate keys. It
/// reveals nothing useful about the key.
pub fn key_id<H: Hash256>(hash: &H, key: &[u8]) -> Option<u16> {
    let mac = hmac_sha256(hash, key, &[b"selfmig key id"])?;
    Some(u16::from_le_bytes([mac[0], mac[1]]))
}

/// The contents of a token.
///
/// The session key is secret: `Debug` does not print it, and it is zeroed
/// when the token is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Id of the provider key that seals it (see [`key_id`]).
    pub key_id: u16,
    /// Unique id; a loader admits each id once.
    pub id: [u8; TOKEN_ID_LEN],
    /// Unix time (seconds) from which the token is refused.
    pub expiry: u64,
    /// Most distinct page frames the image may use.
    pub granted_pages: u64,
    /// Most vCPUs the guest may have.
    pub granted_vcpus: u32,
    /// Pages one payment link buys.
    pub unit_pages: u32,
    /// Price of one unit, in the provider's units.
    pub price_per_unit: u64,
    /// Payment chain anchor, `w0 = H^chain_len(seed)`.
    pub anchor: [u8; 32],
    /// Number of links the payer holds.
    pub chain_len: u32,
    /// Key of the stream (AES-256-GCM, after per-connection derivation).
    pub session_key: [u8; KEY_LEN],
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Token")
            .field("key_id", &self.key_id)
            .field("id", &self.id)
            .field("expiry", &self.expiry)
            .field("granted_pages", &self.granted_pages)
            .field("granted_vcpus", &self.granted_vcpus)
            .field("unit_pages", &self.unit_pages)
            .field("price_per_unit", &self.price_per_unit)
            .field("anchor", &self.anchor)
            .field("chain_len", &self.chain_len)
            .field("session_key", &"<secret>")
            .finish()
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        scrub(&mut self.session_key);
    }
}

/// The checked plaintext header of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHeader {
    /// Id of the provider key that sealed the token.
    pub key_id: u16,
    /// The sealing nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl TokenHeader {
    /// Checks the fixed header at the start of `bytes` (magic, version,
    /// stated length) and that `bytes` is exactly one token. Reads only the
    /// first [`TOKEN_HEADER_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() < TOKEN_HEADER_LEN {
            return Err(TokenError::Truncated);
        }
        if bytes[0..4] != TOKEN_MAGIC {
            return Err(TokenError::BadMagic);
        }
        if u16::from_le_bytes([bytes[4], bytes[5]]) != TOKEN_VERSION {
            return Err(TokenError::BadVersion);
        }
        if le32(&bytes[8..]) as usize != TOKEN_LEN {
            return Err(TokenError::BadLength);
        }
        match bytes.len() {
            n if n < TOKEN_LEN => return Err(TokenError::Truncated),
            n if n > TOKEN_LEN => return Err(TokenError::BadLength),
            _ => {}
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[12..24]);
        Ok(Self {
            key_id: u16::from_le_bytes([bytes[6], bytes[7]]),
            nonce,
        })
    }
}

impl Token {
    /// Whether the token grants anything at all.
    fn grants(&self) -> bool {
        self.granted_pages != 0
            && self.granted_vcpus != 0
            && self.unit_pages != 0
            && self.chain_len != 0
    }

    /// Units it takes to pay for the whole grant:
    /// `ceil(granted_pages / unit_pages)`.
    pub fn units_for_grant(&self) -> u64 {
        self.granted_pages
            .div_ceil(u64::from(self.unit_pages.max(1)))
    }

    /// Seals the token under `aead` with `nonce` (which must never have been
    /// used with this key before: draw it at random) into `out`; returns
    /// [`TOKEN_LEN`]. Refuses to mint a token [`Token::open`] would refuse
    /// for anything but its expiry.
    pub fn seal<A: Aead>(
        &self,
        aead: &A,
        nonce: &[u8; NONCE_LEN],
        out: &mut [u8],
    ) -> Result<usize, TokenError> {
        if !self.grants() {
            return Err(TokenError::NoGrant);
        }
        if self.chain_len > MAX_CHAIN_LEN {
            return Err(TokenError::Malformed);
        }
        if out.len() < TOKEN_LEN {
            return Err(TokenError::NoSpace);
        }
        let out = &mut out[..TOKEN_LEN];
        out[0..4].copy_from_slice(&TOKEN_MAGIC);
        out[4..6].copy_from_slice(&TOKEN_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&self.key_id.to_le_bytes());
        out[8..12].copy_from_slice(&(TOKEN_LEN as u32).to_le_bytes());
        out[12..24].copy_from_slice(nonce);
        let (header, rest) = out.split_at_mut(TOKEN_HEADER_LEN);
        let (body, tag_out) = rest.split_at_mut(TOKEN_BODY_LEN);
        body[0..16].copy_from_slice(&self.id);
        body[16..24].copy_from_slice(&self.expiry.to_le_bytes());
        body[24..32].copy_from_slice(&self.granted_pages.to_le_bytes());
        body[32..36].copy_from_slice(&self.granted_vcpus.to_le_bytes());
        body[36..40].copy_from_slice(&self.unit_pages.to_le_bytes());
        body[40..48].copy_from_slice(&self.price_per_unit.to_le_bytes());
        body[48..80].copy_from_slice(&self.anchor);
        body[80..84].copy_from_slice(&self.chain_len.to_le_bytes());
        body[84..88].copy_from_slice(&0u32.to_le_bytes());
        body[88..120].copy_from_slice(&self.session_key);
        let mut tag = [0u8; TAG_LEN];
        if aead.seal(nonce, header, body, &mut tag).is_err() {
            scrub(body);
            return Err(TokenError::Crypto);
        }
        tag_out.copy_from_slice(&tag);
        Ok(TOKEN_LEN)
    }

    /// Opens a token: checks the plaintext header, the key id, the tag, and
    /// then the contents, refusing an expired token (`now` in unix seconds)
    /// and one that grants nothing.
    ///
    /// Nothing after the header is read before the tag verifies: the body
    /// is decrypted in a stack copy, which is zeroed if it does not.
    pub fn open<A: Aead>(
        aead: &A,
        key_id: u16,
        bytes: &[u8],
        now: u64,
    ) -> Result<Token, TokenError> {
        let header = TokenHeader::decode(bytes)?;
        if header.key_id != key_id {
            return Err(TokenError::UnknownKey);
        }
        let mut body = [0u8; TOKEN_BODY_LEN];
        body.copy_from_slice(&bytes[TOKEN_HEADER_LEN..TOKEN_HEADER_LEN + TOKEN_BODY_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&bytes[TOKEN_HEADER_LEN + TOKEN_BODY_LEN..TOKEN_LEN]);
        let opened = aead.open(&header.nonce, &bytes[..TOKEN_HEADER_LEN], &mut body, &tag);
        if let Err(e) = opened {
            scrub(&mut body);
            return Err(match e {
                CryptoError::Auth => TokenError::Forged,
                CryptoError::Backend => TokenError::Crypto,
            });
        }
        let mut id = [0u8; TOKEN_ID_LEN];
        id.copy_from_slice(&body[0..16]);
        let mut anchor = [0u8; 32];
        anchor.copy_from_slice(&body[48..80]);
        let mut session_key = [0u8; KEY_LEN];
        session_key.copy_from_slice(&body[88..120]);
        let flags = le32(&body[84..]);
        let token = Token {
            key_id: header.key_id,
            id,
            expiry: le64(&body[16..]),
            granted_pages: le64(&body[24..]),
            granted_vcpus: le32(&body[32..]),
            unit_pages: le32(&body[36..]),
            price_per_unit: le64(&body[40..]),
            anchor,
            chain_len: le32(&body[80..]),
            session_key,
        };
        scrub(&mut body);
        if flags != 0 || token.chain_len > MAX_CHAIN_LEN {
            return Err(TokenError::Malformed);
        }
        if now >= token.expiry {
            return Err(TokenError::Expired);
        }
        if !token.grants() {
            return Err(TokenError::NoGrant);
        }
        Ok(token)
    }
}
