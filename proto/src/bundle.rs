// SPDX-License-Identifier: GPL-2.0

//! Token bundles: what the provider hands the owner of a guest.
//!
//! A guest cannot read its token's sealed body, yet it needs the session
//! key to seal the stream and the chain seed to pay, and it must know what
//! it was granted to pay for it. A bundle carries the token exactly as
//! minted together with those secrets and a plaintext copy of the grant.
//! It is what the source is given as its "token" (sysfs `token` in hex, or
//! the ioctl's token buffer); only the [`TOKEN_LEN`] bytes of the token
//! itself ever go on the wire.
//!
//! ```text
//! offset size field
//!      0    4 magic           "SMTB"
//!      4    2 version         BUNDLE_VERSION
//!      6    2 zero
//!      8  160 token           the sealed token, exactly as minted
//!    168    8 granted_pages
//!    176    4 granted_vcpus
//!    180    4 unit_pages      pages one chain link buys
//!    184    4 chain_len       n
//!    188    4 zero
//!    192    8 expiry          unix seconds
//!    200   32 session_key
//!    232   32 seed            the chain's seed: anchor = H^n(seed)
//! ```
//!
//! All integers are little-endian. The plaintext fields are the provider's
//! word, not the loader's: the loader judges the sealed token alone, so a
//! bundle whose fields disagree with its token only misleads its holder.
//! [`TokenBundle::mint`] fills both from the same values.

use super::chain::{chain_anchor, Link, LINK_LEN};
use super::crypto::{scrub, Aead, Hash256, KEY_LEN, NONCE_LEN};
use super::token::{Token, TokenError, TokenHeader, MAX_CHAIN_LEN, TOKEN_ID_LEN, TOKEN_LEN};
use super::uapi::{EBADMSG, EINVAL, EPROTONOSUPPORT};
use super::wire::{le32, le64};

/// First four bytes of every bundle.
pub const BUNDLE_MAGIC: [u8; 4] = *b"SMTB";

/// Version of the bundle format.
pub const BUNDLE_VERSION: u16 = 1;

/// Offset of the sealed token.
const TOKEN_OFF: usize = 8;

/// Offset of the plaintext grant, right after the token.
const GRANT_OFF: usize = TOKEN_OFF + TOKEN_LEN;

/// Offset of the session key.
const SESSION_KEY_OFF: usize = GRANT_OFF + 32;

/// Offset of the chain seed.
const SEED_OFF: usize = SESSION_KEY_OFF + KEY_LEN;

/// Length of a whole bundle.
pub const BUNDLE_LEN: usize = SEED_OFF + LINK_LEN;

// The layout above is fixed (Documentation/selfmig/cli.rst repeats it),
// and a bundle must fit where the control paths carry a token.
const _: () = assert!(GRANT_OFF == 168 && SESSION_KEY_OFF == 200 && SEED_OFF == 232);
const _: () = assert!(BUNDLE_LEN == 264);
const _: () = assert!(BUNDLE_LEN <= super::uapi::MAX_TOKEN_LEN);

/// Why bytes are not a token bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// Shorter than [`BUNDLE_LEN`].
    Truncated,
    /// Longer than [`BUNDLE_LEN`].
    BadLength,
    /// The first four bytes are not [`BUNDLE_MAGIC`].
    BadMagic,
    /// A bundle format this code does not know.
    BadVersion,
    /// A reserved field is not zero.
    BadPadding,
    /// The bundled token's plaintext header does not decode.
    Token(TokenError),
    /// The chain is empty or longer than [`MAX_CHAIN_LEN`].
    BadChain,
    /// It grants no pages or vCPUs, or a link buys no pages.
    NoGrant,
}

impl BundleError {
    /// A short, stable description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            BundleError::Truncated => "token bundle truncated",
            BundleError::BadLength => "token bundle has the wrong length",
            BundleError::BadMagic => "not a token bundle (bad magic)",
            BundleError::BadVersion => "unknown token bundle version",
            BundleError::BadPadding => "token bundle has nonzero reserved bytes",
            BundleError::Token(TokenError::BadMagic) => "bundled token is not a token (bad magic)",
            BundleError::Token(TokenError::BadVersion) => "bundled token has an unknown version",
            BundleError::Token(_) => "bundled token has the wrong length",
            BundleError::BadChain => "token bundle's payment chain is empty or too long",
            BundleError::NoGrant => "token bundle grants nothing",
        }
    }

    /// The (positive) errno a kernel caller reports.
    pub fn errno(&self) -> i32 {
        match self {
            BundleError::Truncated
            | BundleError::BadLength
            | BundleError::BadMagic
            | BundleError::BadPadding
            | BundleError::BadChain => EBADMSG,
            BundleError::BadVersion => EPROTONOSUPPORT,
            BundleError::Token(e) => e.errno(),
            BundleError::NoGrant => EINVAL,
        }
    }
}

/// What a provider mints a token and its bundle from.
///
/// The id, the session key and the seed must come from a cryptographic
/// random source. `Debug` does not print the secrets, and they are zeroed
/// when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct MintSpec {
    /// Id of the provider key (see [`super::token::key_id`]).
    pub key_id: u16,
    /// The token's unique id.
    pub id: [u8; TOKEN_ID_LEN],
    /// Unix time (seconds) from which the token is refused.
    pub expiry: u64,
    /// Most distinct page frames the image may use.
    pub granted_pages: u64,
    /// Most vCPUs the guest may have.
    pub granted_vcpus: u32,
    /// Pages one chain link buys.
    pub unit_pages: u32,
    /// Price of one unit, in the provider's units.
    pub price_per_unit: u64,
    /// Length of the payment chain.
    pub chain_len: u32,
    /// Key of the stream.
    pub session_key: [u8; KEY_LEN],
    /// Seed of the payment chain.
    pub seed: Link,
}

impl core::fmt::Debug for MintSpec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MintSpec")
            .field("key_id", &self.key_id)
            .field("id", &self.id)
            .field("expiry", &self.expiry)
            .field("granted_pages", &self.granted_pages)
            .field("granted_vcpus", &self.granted_vcpus)
            .field("unit_pages", &self.unit_pages)
            .field("price_per_unit", &self.price_per_unit)
            .field("chain_len", &self.chain_len)
            .field("session_key", &"<secret>")
            .field("seed", &"<secret>")
            .finish()
    }
}

impl Drop for MintSpec {
    fn drop(&mut self) {
        scrub(&mut self.session_key);
        scrub(&mut self.seed);
    }
}

/// A sealed token with the secrets and the grant its holder needs.
///
/// `Debug` does not print the session key or the seed, and they are zeroed
/// when the bundle is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenBundle {
    /// The sealed token, exactly as minted: what goes on the wire.
    pub token: [u8; TOKEN_LEN],
    /// Most distinct page frames the image may use.
    pub granted_pages: u64,
    /// Most vCPUs the guest may have.
    pub granted_vcpus: u32,
    /// Pages one chain link buys.
    pub unit_pages: u32,
    /// Length of the payment chain.
    pub chain_len: u32,
    /// Unix time (seconds) from which the token is refused.
    pub expiry: u64,
    /// Key of the stream (the token's session key).
    pub session_key: [u8; KEY_LEN],
    /// Seed of the payment chain: the token's anchor is `H^chain_len(seed)`.
    pub seed: Link,
}

impl core::fmt::Debug for TokenBundle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenBundle")
            .field("token", &self.token_header().ok())
            .field("granted_pages", &self.granted_pages)
            .field("granted_vcpus", &self.granted_vcpus)
            .field("unit_pages", &self.unit_pages)
            .field("chain_len", &self.chain_len)
            .field("expiry", &self.expiry)
            .field("session_key", &"<secret>")
            .field("seed", &"<secret>")
            .finish()
    }
}

impl Drop for TokenBundle {
    fn drop(&mut self) {
        scrub(&mut self.session_key);
        scrub(&mut self.seed);
    }
}

impl TokenBundle {
    /// Mints a token from `spec` (anchor `H^chain_len(seed)`), seals it
    /// under `provider` with `nonce` (random, never used with this key
    /// before), and returns it bundled with its secrets.
    ///
    /// Refuses what [`Token::seal`] refuses (no grant, an overlong chain),
    /// before hashing the chain; a minted bundle always decodes.
    pub fn mint<A: Aead, H: Hash256>(
        provider: &A,
        hash: &H,
        nonce: &[u8; NONCE_LEN],
        spec: &MintSpec,
    ) -> Result<Self, TokenError> {
        if spec.chain_len > MAX_CHAIN_LEN {
            return Err(TokenError::Malformed);
        }
        if spec.granted_pages == 0
            || spec.granted_vcpus == 0
            || spec.unit_pages == 0
            || spec.chain_len == 0
        {
            return Err(TokenError::NoGrant);
        }
        let token = Token {
            key_id: spec.key_id,
            id: spec.id,
            expiry: spec.expiry,
            granted_pages: spec.granted_pages,
            granted_vcpus: spec.granted_vcpus,
            unit_pages: spec.unit_pages,
            price_per_unit: spec.price_per_unit,
            anchor: chain_anchor(hash, &spec.seed, spec.chain_len),
            chain_len: spec.chain_len,
            session_key: spec.session_key,
        };
        let mut sealed = [0u8; TOKEN_LEN];
        token.seal(provider, nonce, &mut sealed)?;
        Ok(Self {
            token: sealed,
            granted_pages: spec.granted_pages,
            granted_vcpus: spec.granted_vcpus,
            unit_pages: spec.unit_pages,
            chain_len: spec.chain_len,
            expiry: spec.expiry,
            session_key: spec.session_key,
            seed: spec.seed,
        })
    }

    /// Encodes the bundle.
    pub fn encode(&self) -> [u8; BUNDLE_LEN] {
        let mut out = [0u8; BUNDLE_LEN];
        out[0..4].copy_from_slice(&BUNDLE_MAGIC);
        out[4..6].copy_from_slice(&BUNDLE_VERSION.to_le_bytes());
        out[TOKEN_OFF..GRANT_OFF].copy_from_slice(&self.token);
        let g = GRANT_OFF;
        out[g..g + 8].copy_from_slice(&self.granted_pages.to_le_bytes());
        out[g + 8..g + 12].copy_from_slice(&self.granted_vcpus.to_le_bytes());
        out[g + 12..g + 16].copy_from_slice(&self.unit_pages.to_le_bytes());
        out[g + 16..g + 20].copy_from_slice(&self.chain_len.to_le_bytes());
        out[g + 24..g + 32].copy_from_slice(&self.expiry.to_le_bytes());
        out[SESSION_KEY_OFF..SEED_OFF].copy_from_slice(&self.session_key);
        out[SEED_OFF..BUNDLE_LEN].copy_from_slice(&self.seed);
        out
    }

    /// Decodes exactly one bundle, refusing a wrong length, magic or
    /// version, nonzero reserved bytes, a token whose plaintext header does
    /// not decode, an empty or overlong chain, and a grant of no pages, no
    /// vCPUs or a unit of no pages. The token's seal is not (cannot be)
    /// checked here: only the holder of the provider key can.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() >= 4 && bytes[0..4] != BUNDLE_MAGIC {
            return Err(BundleError::BadMagic);
        }
        match bytes.len() {
            n if n < BUNDLE_LEN => return Err(BundleError::Truncated),
            n if n > BUNDLE_LEN => return Err(BundleError::BadLength),
            _ => {}
        }
        if u16::from_le_bytes([bytes[4], bytes[5]]) != BUNDLE_VERSION {
            return Err(BundleError::BadVersion);
        }
        let g = GRANT_OFF;
        if bytes[6..8] != [0; 2] || bytes[g + 20..g + 24] != [0; 4] {
            return Err(BundleError::BadPadding);
        }
        TokenHeader::decode(&bytes[TOKEN_OFF..GRANT_OFF]).map_err(BundleError::Token)?;
        let chain_len = le32(&bytes[g + 16..]);
        if chain_len == 0 || chain_len > MAX_CHAIN_LEN {
            return Err(BundleError::BadChain);
        }
        let granted_pages = le64(&bytes[g..]);
        let granted_vcpus = le32(&bytes[g + 8..]);
        let unit_pages = le32(&bytes[g + 12..]);
        if granted_pages == 0 || granted_vcpus == 0 || unit_pages == 0 {
            return Err(BundleError::NoGrant);
        }
        let mut token = [0u8; TOKEN_LEN];
        token.copy_from_slice(&bytes[TOKEN_OFF..GRANT_OFF]);
        let mut session_key = [0u8; KEY_LEN];
        session_key.copy_from_slice(&bytes[SESSION_KEY_OFF..SEED_OFF]);
        let mut seed = [0u8; LINK_LEN];
        seed.copy_from_slice(&bytes[SEED_OFF..BUNDLE_LEN]);
        Ok(Self {
            token,
            granted_pages,
            granted_vcpus,
            unit_pages,
            chain_len,
            expiry: le64(&bytes[g + 24..]),
            session_key,
            seed,
        })
    }

    /// The token's plaintext header: the provider key id and the nonce.
    pub fn token_header(&self) -> Result<TokenHeader, TokenError> {
        TokenHeader::decode(&self.token)
    }

    /// The chain's anchor `H^chain_len(seed)`, as the token must carry it.
    /// Costs `chain_len` hashes.
    pub fn anchor<H: Hash256>(&self, hash: &H) -> Link {
        chain_anchor(hash, &self.seed, self.chain_len)
    }

    /// Units it takes to pay for the whole grant:
    /// `ceil(granted_pages / unit_pages)`.
    pub fn units_for_grant(&self) -> u64 {
        self.granted_pages
            .div_ceil(u64::from(self.unit_pages.max(1)))
    }

    /// Whether the token has expired at `now` (unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        now >= self.expiry
    }
}
