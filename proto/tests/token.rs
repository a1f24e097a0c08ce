// SPDX-License-Identifier: GPL-2.0
//! Tokens: round trip, every refusal, truncation at every length, a flipped
//! bit at every position, and the key id; plus the crypto helpers.

mod support;

use selfmig_proto::crypto::{ct_eq, hmac_sha256, Aead, CryptoError, KEY_LEN, NONCE_LEN, TAG_LEN};
use selfmig_proto::token::*;
use selfmig_proto::uapi::MAX_TOKEN_LEN;
use support::*;

const NONCE: [u8; NONCE_LEN] = [3; NONCE_LEN];

/// Decrypts a minted token, lets `edit` change the body, and seals it
/// again: an authentic token with contents `Token::seal` would not mint.
fn reseal(bytes: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let (header, rest) = out.split_at_mut(TOKEN_HEADER_LEN);
    let (body, tag) = rest.split_at_mut(TOKEN_BODY_LEN);
    let nonce: [u8; NONCE_LEN] = header[12..24].try_into().unwrap();
    let t: [u8; TAG_LEN] = (&*tag).try_into().unwrap();
    provider().open(&nonce, header, body, &t).unwrap();
    edit(body);
    let mut t = [0u8; TAG_LEN];
    provider().seal(&nonce, header, body, &mut t).unwrap();
    tag.copy_from_slice(&t);
    out
}

fn open(bytes: &[u8]) -> Result<Token, TokenError> {
    Token::open(&provider(), provider_key_id(), bytes, NOW)
}

#[test]
fn round_trip() {
    let t = sample_token();
    let bytes = mint(&t, NONCE);
    assert_eq!(bytes.len(), TOKEN_LEN);
    assert_eq!(TOKEN_LEN, 160);
    const { assert!(TOKEN_LEN <= MAX_TOKEN_LEN) };
    assert_eq!(&bytes[0..4], b"SMTK");
    let back = open(&bytes).unwrap();
    assert_eq!(back, t);
    // The body is encrypted: the session key does not appear in clear.
    assert!(!bytes.windows(32).any(|w| w == t.session_key));
    // A different nonce gives a different token that opens the same.
    let other = mint(&t, [4; NONCE_LEN]);
    assert_ne!(other, bytes);
    assert_eq!(open(&other).unwrap(), t);
    // AES-128 provider keys work too.
    let key128 = [0x17u8; 16];
    let aead = Gcm::new(&key128).unwrap();
    let id = key_id(&Sha256, &key128).unwrap();
    let t128 = Token { key_id: id, ..t };
    let mut out = [0u8; TOKEN_LEN];
    t128.seal(&aead, &NONCE, &mut out).unwrap();
    assert_eq!(Token::open(&aead, id, &out, NOW).unwrap(), t128);
}

#[test]
fn header_decodes_alone() {
    let bytes = mint(&sample_token(), NONCE);
    let h = TokenHeader::decode(&bytes).unwrap();
    assert_eq!(h.key_id, provider_key_id());
    assert_eq!(h.nonce, NONCE);
}

#[test]
fn truncation_at_every_length() {
    let bytes = mint(&sample_token(), NONCE);
    for cut in 0..TOKEN_LEN {
        assert_eq!(open(&bytes[..cut]), Err(TokenError::Truncated), "cut {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(open(&long), Err(TokenError::BadLength));
}

#[test]
fn flipped_bit_at_every_position() {
    let bytes = mint(&sample_token(), NONCE);
    for bit in 0..TOKEN_LEN * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let expected = match bit / 8 {
            0..=3 => TokenError::BadMagic,
            4..=5 => TokenError::BadVersion,
            6..=7 => TokenError::UnknownKey,
            8..=11 => TokenError::BadLength,
            _ => TokenError::Forged,
        };
        assert_eq!(open(&b), Err(expected), "bit {bit}");
    }
}

#[test]
fn header_refusals() {
    let bytes = mint(&sample_token(), NONCE);
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(open(&b), Err(TokenError::BadMagic));
    let mut b = bytes.clone();
    b[4..6].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(open(&b), Err(TokenError::BadVersion));
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&(TOKEN_LEN as u32 + 1).to_le_bytes());
    assert_eq!(open(&b), Err(TokenError::BadLength));
    // A stated length that matches a longer buffer is still not a token.
    let mut b = bytes.clone();
    b.extend_from_slice(&[0; 16]);
    b[8..12].copy_from_slice(&(TOKEN_LEN as u32 + 16).to_le_bytes());
    assert_eq!(open(&b), Err(TokenError::BadLength));
    // Another loader's key id.
    let other = provider_key_id().wrapping_add(1);
    assert_eq!(
        Token::open(&provider(), other, &bytes, NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn forged_under_another_key() {
    let t = sample_token();
    let bytes = mint(&t, NONCE);
    let wrong = Gcm::new(&[0x43; 32]).unwrap();
    // Same key id claimed, other key: the tag does not verify.
    assert_eq!(
        Token::open(&wrong, provider_key_id(), &bytes, NOW),
        Err(TokenError::Forged)
    );
    // A token minted by someone without the key, claiming its id.
    let mut forged = [0u8; TOKEN_LEN];
    t.seal(&wrong, &NONCE, &mut forged).unwrap();
    assert_eq!(open(&forged), Err(TokenError::Forged));
}

#[test]
fn expiry() {
    let t = sample_token();
    let bytes = mint(&t, NONCE);
    let at = |now| Token::open(&provider(), provider_key_id(), &bytes, now);
    assert!(at(t.expiry - 1).is_ok());
    assert_eq!(at(t.expiry), Err(TokenError::Expired));
    assert_eq!(at(t.expiry + 1), Err(TokenError::Expired));
    assert_eq!(at(u64::MAX), Err(TokenError::Expired));
    // A token minted already expired still mints (the clock is the
    // loader's), but never opens.
    let dead = Token {
        expiry: 0,
        ..sample_token()
    };
    assert_eq!(open(&mint(&dead, NONCE)), Err(TokenError::Expired));
}

#[test]
fn zero_grants_are_refused() {
    let bytes = mint(&sample_token(), NONCE);
    // granted_pages, granted_vcpus, unit_pages, chain_len.
    for (off, len) in [(24, 8), (32, 4), (36, 4), (80, 4)] {
        let b = reseal(&bytes, |body| body[off..off + len].fill(0));
        assert_eq!(open(&b), Err(TokenError::NoGrant), "field at {off}");
    }
    // And the mint refuses to make them.
    let mut out = [0u8; TOKEN_LEN];
    for t in [
        Token {
            granted_pages: 0,
            ..sample_token()
        },
        Token {
            granted_vcpus: 0,
            ..sample_token()
        },
        Token {
            unit_pages: 0,
            ..sample_token()
        },
        Token {
            chain_len: 0,
            ..sample_token()
        },
    ] {
        assert_eq!(
            t.seal(&provider(), &NONCE, &mut out),
            Err(TokenError::NoGrant)
        );
    }
}

#[test]
fn malformed_contents_are_refused() {
    let bytes = mint(&sample_token(), NONCE);
    let b = reseal(&bytes, |body| body[84] = 1);
    assert_eq!(open(&b), Err(TokenError::Malformed));
    let b = reseal(&bytes, |body| {
        body[80..84].copy_from_slice(&(MAX_CHAIN_LEN + 1).to_le_bytes())
    });
    assert_eq!(open(&b), Err(TokenError::Malformed));
    let mut out = [0u8; TOKEN_LEN];
    let long = Token {
        chain_len: MAX_CHAIN_LEN + 1,
        ..sample_token()
    };
    assert_eq!(
        long.seal(&provider(), &NONCE, &mut out),
        Err(TokenError::Malformed)
    );
}

/// An AEAD whose backend always fails.
struct Broken;

impl Aead for Broken {
    fn seal(
        &self,
        _: &[u8; NONCE_LEN],
        _: &[u8],
        _: &mut [u8],
        _: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        Err(CryptoError::Backend)
    }
    fn open(
        &self,
        _: &[u8; NONCE_LEN],
        _: &[u8],
        _: &mut [u8],
        _: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        Err(CryptoError::Backend)
    }
}

#[test]
fn backend_failure_and_no_space() {
    let t = sample_token();
    let bytes = mint(&t, NONCE);
    assert_eq!(
        Token::open(&Broken, provider_key_id(), &bytes, NOW),
        Err(TokenError::Crypto)
    );
    let mut out = [0u8; TOKEN_LEN];
    assert_eq!(t.seal(&Broken, &NONCE, &mut out), Err(TokenError::Crypto));
    let mut small = [0u8; TOKEN_LEN - 1];
    assert_eq!(
        t.seal(&provider(), &NONCE, &mut small),
        Err(TokenError::NoSpace)
    );
    // A larger buffer is fine; only TOKEN_LEN bytes are written.
    let mut big = [0xaau8; TOKEN_LEN + 8];
    assert_eq!(t.seal(&provider(), &NONCE, &mut big), Ok(TOKEN_LEN));
    assert_eq!(big[TOKEN_LEN..], [0xaa; 8]);
}

#[test]
fn debug_hides_the_session_key() {
    let s = format!("{:?}", sample_token());
    assert!(s.contains("<secret>"));
    assert!(!s.contains(&format!("{:?}", [0x5eu8; KEY_LEN])));
}

#[test]
fn units_for_grant() {
    let t = sample_token();
    assert_eq!(t.units_for_grant(), 12);
    let t = Token {
        granted_pages: 769,
        ..sample_token()
    };
    assert_eq!(t.units_for_grant(), 13);
}

#[test]
fn error_codes_are_stable_and_described() {
    use TokenError::*;
    let all = [
        (Truncated, 101),
        (BadMagic, 102),
        (BadVersion, 103),
        (BadLength, 104),
        (UnknownKey, 105),
        (Forged, 106),
        (Expired, 107),
        (NoGrant, 108),
        (Malformed, 109),
        (Crypto, 110),
        (NoSpace, 111),
    ];
    for (e, code) in all {
        assert_eq!(e.code(), code);
        assert!(!e.as_str().is_empty());
        assert!(e.errno() > 0);
    }
    assert_eq!(Forged.errno(), EKEYREJECTED);
    assert_eq!(Expired.errno(), EKEYEXPIRED);
}

#[test]
fn key_ids() {
    let a = key_id(&Sha256, &[1; 32]).unwrap();
    let b = key_id(&Sha256, &[2; 32]).unwrap();
    assert_ne!(a, b);
    assert_eq!(a, key_id(&Sha256, &[1; 32]).unwrap());
    assert_eq!(key_id(&Sha256, &[0; 65]), None);
}

/// RFC 4231 test cases 1, 2 and 6 (the last with a key longer than a block
/// is out of range here).
#[test]
fn hmac_sha256_vectors() {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let mac = hmac_sha256(&Sha256, &[0x0b; 20], &[b"Hi There"]).unwrap();
    assert_eq!(
        mac.to_vec(),
        hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    );
    let mac = hmac_sha256(&Sha256, b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
    assert_eq!(
        mac.to_vec(),
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    assert_eq!(hmac_sha256(&Sha256, &[0xaa; 131], &[b"x"]), None);
    assert_eq!(hmac_sha256(&Sha256, b"k", &[&[0u8; 65]]), None);
}

#[test]
fn constant_time_compare() {
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
    assert!(ct_eq(b"", b""));
}
