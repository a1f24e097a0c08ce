// SPDX-License-Identifier: GPL-2.0

//! `proto`'s crypto traits over crates, as `tools/selfmig/src/crypto.rs`
//! has them: AES-256-GCM (`aes-gcm`) for the stream, SHA-256 (`sha2`) for
//! the stream key and the payment links, and random bytes from the
//! operating system.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use selfmig_proto::crypto::{
    Aead, CryptoError, Hash256, SessionAead, HASH_LEN, KEY_LEN, NONCE_LEN, TAG_LEN,
};
use std::io::Read;

/// AES-256-GCM: the stream's cipher (and, in the tests, the provider's).
pub struct Gcm(Box<Aes256Gcm>);

impl Aead for Gcm {
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let t = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
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
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .map_err(|_| CryptoError::Auth)
    }
}

impl SessionAead for Gcm {
    fn with_key(key: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        Aes256Gcm::new_from_slice(key)
            .map(|g| Gcm(Box::new(g)))
            .map_err(|_| CryptoError::Backend)
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

/// `N` bytes from the operating system's random generator.
pub fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcm_round_trip_and_refusal() {
        let g = Gcm::with_key(&[7; KEY_LEN]).unwrap();
        let mut buf = *b"sixteen byte msg";
        let mut tag = [0u8; TAG_LEN];
        g.seal(&[1; NONCE_LEN], b"aad", &mut buf, &mut tag).unwrap();
        let sealed = buf;
        g.open(&[1; NONCE_LEN], b"aad", &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"sixteen byte msg");
        let mut b = sealed;
        assert_eq!(
            g.open(&[2; NONCE_LEN], b"aad", &mut b, &tag),
            Err(CryptoError::Auth)
        );
    }

    #[test]
    fn sha256_known_answer() {
        let h = Sha256.hash(b"abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(h[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn random_differs() {
        assert_ne!(random::<16>().unwrap(), random::<16>().unwrap());
    }
}
