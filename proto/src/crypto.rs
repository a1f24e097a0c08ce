// SPDX-License-Identifier: GPL-2.0

//! The cryptographic primitives selfmig relies on, as traits.
//!
//! The kernel backs them with its crypto API (`gcm(aes)` through
//! `crypto_alloc_aead`, `sha256` through `crypto_alloc_shash`); user space
//! and the host tests back them with crates. Everything above this file
//! (tokens, payment chains, the sealed stream, admission) is pure logic over
//! these traits, so the exact code the kernel runs is what the tests and the
//! fuzzer exercise.
//!
//! Besides the traits this file holds the two constructions built from them:
//! HMAC-SHA-256 (RFC 2104), used to derive a fresh stream key per
//! connection, and a constant-time comparison.

/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;

/// Length of an AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// Length of a SHA-256 digest.
pub const HASH_LEN: usize = 32;

/// Length of a session or stream key (AES-256).
pub const KEY_LEN: usize = 32;

/// SHA-256's block length, HMAC's key block.
const BLOCK_LEN: usize = 64;

/// Longest message [`hmac_sha256`] takes.
pub const MAX_HMAC_MSG: usize = 64;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The tag did not verify: the data, the associated data, the nonce or
    /// the key differ from what was sealed.
    Auth,
    /// The backend failed for another reason (no memory, no algorithm).
    Backend,
}

/// A keyed AEAD instance (AES-GCM), encrypting and decrypting in place.
///
/// Implementations must be AES-GCM with a 12-byte nonce and a 16-byte tag,
/// as the kernel's `gcm(aes)` is: the formats in this crate fix those
/// lengths. The key length is the instance's business (the provider key may
/// be 16, 24 or 32 bytes; session keys are 32).
pub trait Aead {
    /// Encrypts `buf` in place and writes the tag; `aad` is authenticated
    /// but not encrypted.
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError>;

    /// Verifies `tag` over `aad` and the ciphertext in `buf` and decrypts
    /// `buf` in place. On any error the contents of `buf` are unspecified
    /// (some backends decrypt before they compare) and must not be used.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError>;
}

/// An [`Aead`] that can be created from a 32-byte key: what the stream is
/// sealed with once a token has delivered its session key.
pub trait SessionAead: Aead + Sized {
    /// A new instance keyed with `key` (AES-256-GCM).
    fn with_key(key: &[u8; KEY_LEN]) -> Result<Self, CryptoError>;
}

/// A hash function with a 32-byte digest (SHA-256).
pub trait Hash256 {
    /// The digest of `data`.
    fn hash(&self, data: &[u8]) -> [u8; HASH_LEN];
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early exit.
    core::hint::black_box(diff) == 0
}

/// Overwrites secret bytes with zeroes, in a way the optimiser keeps.
pub fn scrub(buf: &mut [u8]) {
    buf.fill(0);
    core::hint::black_box(buf);
}

/// HMAC-SHA-256 (RFC 2104) of the concatenation of `parts`, keyed with
/// `key` (at most 64 bytes). Returns `None` when the key is longer than a
/// block or the message longer than [`MAX_HMAC_MSG`].
///
/// Built on the one-shot [`Hash256`], so the message is assembled in a stack
/// buffer; selfmig only authenticates short, fixed messages with it.
pub fn hmac_sha256<H: Hash256>(hash: &H, key: &[u8], parts: &[&[u8]]) -> Option<[u8; HASH_LEN]> {
    if key.len() > BLOCK_LEN {
        return None;
    }
    let msg_len = parts.iter().map(|p| p.len()).sum::<usize>();
    if msg_len > MAX_HMAC_MSG {
        return None;
    }
    let mut inner = [0u8; BLOCK_LEN + MAX_HMAC_MSG];
    inner[..key.len()].copy_from_slice(key);
    for b in inner[..BLOCK_LEN].iter_mut() {
        *b ^= 0x36;
    }
    let mut off = BLOCK_LEN;
    for p in parts {
        inner[off..off + p.len()].copy_from_slice(p);
        off += p.len();
    }
    let inner_hash = hash.hash(&inner[..off]);
    let mut outer = [0u8; BLOCK_LEN + HASH_LEN];
    outer[..key.len()].copy_from_slice(key);
    for b in outer[..BLOCK_LEN].iter_mut() {
        *b ^= 0x5c;
    }
    outer[BLOCK_LEN..].copy_from_slice(&inner_hash);
    let mac = hash.hash(&outer);
    scrub(&mut inner);
    scrub(&mut outer);
    Some(mac)
}
