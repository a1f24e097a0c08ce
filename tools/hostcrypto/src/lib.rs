// SPDX-License-Identifier: GPL-2.0

//! `proto`'s crypto traits backed by crates, for the user-space tools (the
//! `selfmig` CLI mints and checks tokens, the hostile source seals its
//! stream): AES-GCM from `aes-gcm` (128-, 192- or 256-bit keys, as the key's
//! length dictates), SHA-256 from `sha2`, and the operating system's random
//! generator from `getrandom`. The kernel backs the same traits with its
//! crypto API, so what is sealed here opens there.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce, Tag};
use selfmig_proto::crypto::{
    scrub, Aead, CryptoError, Hash256, SessionAead, HASH_LEN, KEY_LEN, NONCE_LEN, TAG_LEN,
};

/// AES-192-GCM with a 96-bit nonce (the crate names only 128 and 256).
type Aes192Gcm = AesGcm<Aes192, U12>;

/// AES-GCM keyed with a provider key.
pub enum Gcm {
    /// AES-128-GCM.
    A128(Box<Aes128Gcm>),
    /// AES-192-GCM.
    A192(Box<Aes192Gcm>),
    /// AES-256-GCM.
    A256(Box<Aes256Gcm>),
}

impl Gcm {
    /// An instance for a 16-, 24- or 32-byte key; `None` for any other
    /// length.
    pub fn new(key: &[u8]) -> Option<Self> {
        Some(match key.len() {
            16 => Gcm::A128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            24 => Gcm::A192(Box::new(Aes192Gcm::new_from_slice(key).ok()?)),
            32 => Gcm::A256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            _ => return None,
        })
    }

    /// The key size in bits.
    pub fn bits(&self) -> u32 {
        match self {
            Gcm::A128(_) => 128,
            Gcm::A192(_) => 192,
            Gcm::A256(_) => 256,
        }
    }
}

impl Aead for Gcm {
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let nonce = Nonce::from_slice(nonce);
        let t = match self {
            Gcm::A128(g) => g.encrypt_in_place_detached(nonce, aad, buf),
            Gcm::A192(g) => g.encrypt_in_place_detached(nonce, aad, buf),
            Gcm::A256(g) => g.encrypt_in_place_detached(nonce, aad, buf),
        }
        .map_err(|_| CryptoError::Backend)?;
        tag.copy_from_slice(&t);
        Ok(())
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let nonce = Nonce::from_slice(nonce);
        let tag = Tag::from_slice(tag);
        match self {
            Gcm::A128(g) => g.decrypt_in_place_detached(nonce, aad, buf, tag),
            Gcm::A192(g) => g.decrypt_in_place_detached(nonce, aad, buf, tag),
            Gcm::A256(g) => g.decrypt_in_place_detached(nonce, aad, buf, tag),
        }
        .map_err(|_| CryptoError::Auth)
    }
}

impl SessionAead for Gcm {
    fn with_key(key: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        Gcm::new(key).ok_or(CryptoError::Backend)
    }
}

/// SHA-256 from the `sha2` crate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256;

impl Hash256 for Sha256 {
    fn hash(&self, data: &[u8]) -> [u8; HASH_LEN] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }
}

/// Secret bytes that are zeroed when dropped (a key read from a file).
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, to fill in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        scrub(&mut self.0);
    }
}

/// `N` bytes from the operating system's random generator.
pub fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use selfmig_proto::token::key_id;

    #[test]
    fn gcm_key_lengths() {
        for (len, bits) in [(16, 128), (24, 192), (32, 256)] {
            let g = Gcm::new(&vec![7u8; len]).unwrap();
            assert_eq!(g.bits(), bits);
            let mut buf = *b"sixteen byte msg";
            let mut tag = [0u8; TAG_LEN];
            g.seal(&[1; NONCE_LEN], b"aad", &mut buf, &mut tag).unwrap();
            assert_ne!(&buf, b"sixteen byte msg");
            let sealed = buf;
            g.open(&[1; NONCE_LEN], b"aad", &mut buf, &tag).unwrap();
            assert_eq!(&buf, b"sixteen byte msg");
            // Wrong AAD, nonce, or tag: refused as Auth.
            let mut b2 = sealed;
            assert_eq!(
                g.open(&[1; NONCE_LEN], b"aae", &mut b2, &tag),
                Err(CryptoError::Auth)
            );
            let mut b2 = sealed;
            assert_eq!(
                g.open(&[2; NONCE_LEN], b"aad", &mut b2, &tag),
                Err(CryptoError::Auth)
            );
        }
        for bad in [0, 15, 17, 31, 33, 64] {
            assert!(Gcm::new(&vec![0u8; bad]).is_none(), "{bad}");
        }
    }

    #[test]
    fn aes_gcm_known_answer() {
        // NIST GCM test case 2 (AES-128, zero key, zero IV, one zero block).
        let g = Gcm::new(&[0u8; 16]).unwrap();
        let mut buf = [0u8; 16];
        let mut tag = [0u8; TAG_LEN];
        g.seal(&[0; NONCE_LEN], &[], &mut buf, &mut tag).unwrap();
        assert_eq!(hex(&buf), "0388dace60b6a392f328c2b971b2fe78");
        assert_eq!(hex(&tag), "ab6e47d42cec13bdf53a67b21257bddf");
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex(&Sha256.hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Key ids are defined for every AES key length.
        for len in [16, 24, 32] {
            assert!(key_id(&Sha256, &vec![1u8; len]).is_some());
        }
    }

    #[test]
    fn random_differs() {
        let a: [u8; 32] = random().unwrap();
        let b: [u8; 32] = random().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn secret_debug_hides_bytes() {
        let s = Secret::new(vec![0xab; 16]);
        assert_eq!(format!("{s:?}"), "Secret(<16 bytes>)");
        assert_eq!(s.bytes(), &[0xab; 16]);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
