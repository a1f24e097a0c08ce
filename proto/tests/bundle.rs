// SPDX-License-Identifier: GPL-2.0
//! Token bundles: round trip, the exact layout, every refusal, truncation at
//! every length, minting (the token opens with the provider key and agrees
//! with the bundle, its anchor is the seed's), and secrets kept out of
//! `Debug`.

mod support;

use selfmig_proto::bundle::*;
use selfmig_proto::chain::{chain_anchor, Chain, Payer};
use selfmig_proto::crypto::NONCE_LEN;
use selfmig_proto::token::*;
use selfmig_proto::uapi::{EBADMSG, EINVAL, EPROTONOSUPPORT, MAX_TOKEN_LEN};
use support::*;

const NONCE: [u8; NONCE_LEN] = [3; NONCE_LEN];

/// What the tests mint: the sample token's grant, with its seed.
fn spec() -> MintSpec {
    let t = sample_token();
    MintSpec {
        key_id: t.key_id,
        id: t.id,
        expiry: t.expiry,
        granted_pages: t.granted_pages,
        granted_vcpus: t.granted_vcpus,
        unit_pages: t.unit_pages,
        price_per_unit: t.price_per_unit,
        chain_len: t.chain_len,
        session_key: t.session_key,
        seed: SEED,
    }
}

fn minted() -> TokenBundle {
    TokenBundle::mint(&provider(), &Sha256, &NONCE, &spec()).unwrap()
}

/// `minted()` encoded, with `edit` applied.
fn edited(edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut b = minted().encode().to_vec();
    edit(&mut b);
    b
}

#[test]
fn layout() {
    assert_eq!(BUNDLE_LEN, 264);
    const { assert!(BUNDLE_LEN <= MAX_TOKEN_LEN) };
    let b = minted();
    let e = b.encode();
    assert_eq!(&e[0..4], b"SMTB");
    assert_eq!(&e[4..6], &1u16.to_le_bytes());
    assert_eq!(&e[6..8], &[0, 0]);
    assert_eq!(&e[8..168], &b.token[..]);
    assert_eq!(&e[168..176], &768u64.to_le_bytes());
    assert_eq!(&e[176..180], &2u32.to_le_bytes());
    assert_eq!(&e[180..184], &64u32.to_le_bytes());
    assert_eq!(&e[184..188], &12u32.to_le_bytes());
    assert_eq!(&e[188..192], &[0; 4]);
    assert_eq!(&e[192..200], &(NOW + 3600).to_le_bytes());
    assert_eq!(&e[200..232], &[0x5e; 32]);
    assert_eq!(&e[232..264], &SEED);
}

#[test]
fn round_trip() {
    let b = minted();
    let back = TokenBundle::decode(&b.encode()).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.encode(), b.encode());
    assert_eq!(back.units_for_grant(), 12);
    assert!(!back.expired(NOW));
    assert!(back.expired(NOW + 3600));
    let h = back.token_header().unwrap();
    assert_eq!(h.key_id, provider_key_id());
    assert_eq!(h.nonce, NONCE);

    // Any field values that decode survive a round trip unchanged.
    let odd = TokenBundle {
        token: b.token,
        granted_pages: u64::MAX,
        granted_vcpus: u32::MAX,
        unit_pages: u32::MAX,
        chain_len: MAX_CHAIN_LEN,
        expiry: u64::MAX,
        session_key: [0xa5; 32],
        seed: [0x5a; 32],
    };
    assert_eq!(TokenBundle::decode(&odd.encode()).unwrap(), odd);
    // (2^64 - 1) / (2^32 - 1) = 2^32 + 1 exactly.
    assert_eq!(odd.units_for_grant(), (1 << 32) + 1);
    let min = TokenBundle {
        granted_pages: 1,
        granted_vcpus: 1,
        unit_pages: 1,
        chain_len: 1,
        expiry: 0,
        ..odd.clone()
    };
    assert_eq!(TokenBundle::decode(&min.encode()).unwrap(), min);
    assert!(min.expired(0));
}

#[test]
fn minted_token_opens_and_agrees() {
    let b = minted();
    let t = Token::open(&provider(), provider_key_id(), &b.token, NOW).unwrap();
    let s = spec();
    assert_eq!(t.key_id, s.key_id);
    assert_eq!(t.id, s.id);
    assert_eq!(t.expiry, b.expiry);
    assert_eq!(t.granted_pages, b.granted_pages);
    assert_eq!(t.granted_vcpus, b.granted_vcpus);
    assert_eq!(t.unit_pages, b.unit_pages);
    assert_eq!(t.chain_len, b.chain_len);
    assert_eq!(t.price_per_unit, s.price_per_unit);
    assert_eq!(t.session_key, b.session_key);
    // The anchor is the seed's.
    assert_eq!(t.anchor, chain_anchor(&Sha256, &SEED, 12));
    assert_eq!(t.anchor, b.anchor(&Sha256));
    // It is the sample token, sealed the way the other tests seal it.
    assert_eq!(t, sample_token());
    assert_eq!(b.token.to_vec(), mint(&sample_token(), NONCE));
    // The seed pays the whole chain against the token's anchor.
    let mut storage = vec![[0u8; 32]; Payer::storage_len(t.chain_len)];
    let mut payer = Payer::new(&Sha256, &b.seed, b.chain_len, &t.anchor, &mut storage).unwrap();
    let mut chain = Chain::new(t.anchor, t.chain_len);
    while let Some(p) = payer.next_link(&Sha256) {
        chain.pay(&Sha256, p.index, &p.link).unwrap();
    }
    assert_eq!(u64::from(chain.paid()), b.units_for_grant());

    // Another key neither opens it nor is taken for the provider's.
    let other = Gcm::new(&[0x43; 32]).unwrap();
    let other_id = key_id(&Sha256, &[0x43; 32]).unwrap();
    assert_ne!(other_id, provider_key_id());
    assert_eq!(
        Token::open(&other, other_id, &b.token, NOW),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        Token::open(&other, provider_key_id(), &b.token, NOW),
        Err(TokenError::Forged)
    );

    // AES-128 provider keys mint too.
    let k128 = [0x17u8; 16];
    let id128 = key_id(&Sha256, &k128).unwrap();
    let s128 = MintSpec {
        key_id: id128,
        ..spec()
    };
    let g128 = Gcm::new(&k128).unwrap();
    let b128 = TokenBundle::mint(&g128, &Sha256, &NONCE, &s128).unwrap();
    assert_eq!(b128.token_header().unwrap().key_id, id128);
    assert!(Token::open(&g128, id128, &b128.token, NOW).is_ok());
}

#[test]
fn mint_refuses_what_seal_refuses() {
    let p = provider();
    let refused = |edit: &dyn Fn(&mut MintSpec)| {
        let mut s = spec();
        edit(&mut s);
        TokenBundle::mint(&p, &Sha256, &NONCE, &s).unwrap_err()
    };
    assert_eq!(refused(&|s| s.granted_pages = 0), TokenError::NoGrant);
    assert_eq!(refused(&|s| s.granted_vcpus = 0), TokenError::NoGrant);
    assert_eq!(refused(&|s| s.unit_pages = 0), TokenError::NoGrant);
    assert_eq!(refused(&|s| s.chain_len = 0), TokenError::NoGrant);
    // Refused before hashing 4 billion times.
    assert_eq!(refused(&|s| s.chain_len = u32::MAX), TokenError::Malformed);
    assert_eq!(
        refused(&|s| s.chain_len = MAX_CHAIN_LEN + 1),
        TokenError::Malformed
    );
    // An expired token is minted (open judges expiry), and decodes.
    let mut s = spec();
    s.expiry = 0;
    let b = TokenBundle::mint(&p, &Sha256, &NONCE, &s).unwrap();
    assert_eq!(TokenBundle::decode(&b.encode()).unwrap(), b);
}

#[test]
fn every_refusal() {
    use BundleError::*;
    let cases: Vec<(Vec<u8>, BundleError)> = vec![
        (edited(|b| b[0] = b'X'), BadMagic),
        (edited(|b| b[3] = b'K'), BadMagic),
        (edited(|b| b[4] = 2), BadVersion),
        (edited(|b| b[5] = 1), BadVersion),
        (edited(|b| b[4] = 0), BadVersion),
        (edited(|b| b[6] = 1), BadPadding),
        (edited(|b| b[7] = 0x80), BadPadding),
        (edited(|b| b[188] = 1), BadPadding),
        (edited(|b| b[191] = 1), BadPadding),
        // The token's plaintext header: magic, version, stated length.
        (edited(|b| b[8] = b'X'), Token(TokenError::BadMagic)),
        (edited(|b| b[12] = 2), Token(TokenError::BadVersion)),
        (edited(|b| b[16] = 161), Token(TokenError::BadLength)),
        (edited(|b| b[16..20].fill(0)), Token(TokenError::BadLength)),
        // Chain.
        (edited(|b| b[184..188].fill(0)), BadChain),
        (
            edited(|b| b[184..188].copy_from_slice(&(MAX_CHAIN_LEN + 1).to_le_bytes())),
            BadChain,
        ),
        (edited(|b| b[184..188].fill(0xff)), BadChain),
        // Grant.
        (edited(|b| b[168..176].fill(0)), NoGrant),
        (edited(|b| b[176..180].fill(0)), NoGrant),
        (edited(|b| b[180..184].fill(0)), NoGrant),
        // Lengths.
        (vec![], Truncated),
        (b"SMT".to_vec(), Truncated),
        (b"SMTB".to_vec(), Truncated),
        (edited(|_| {})[..BUNDLE_LEN - 1].to_vec(), Truncated),
        (
            {
                let mut b = edited(|_| {});
                b.push(0);
                b
            },
            BadLength,
        ),
        (vec![0; MAX_TOKEN_LEN], BadMagic),
        // A bare token is not a bundle.
        (mint(&sample_token(), NONCE), BadMagic),
    ];
    for (bytes, want) in cases {
        assert_eq!(TokenBundle::decode(&bytes), Err(want), "{want:?}");
    }
    // The token's sealed body is not the decoder's business: a forged
    // token decodes (the loader refuses it), as do grant and expiry fields
    // the token does not agree with.
    let forged = edited(|b| b[100] ^= 1);
    assert!(TokenBundle::decode(&forged).is_ok());
    let t = TokenBundle::decode(&forged).unwrap().token;
    assert_eq!(
        selfmig_proto::token::Token::open(&provider(), provider_key_id(), &t, NOW),
        Err(TokenError::Forged)
    );
    let lying = edited(|b| b[168..176].copy_from_slice(&1_000_000u64.to_le_bytes()));
    assert_eq!(
        TokenBundle::decode(&lying).unwrap().granted_pages,
        1_000_000
    );
    // The chain bound is inclusive.
    let longest = edited(|b| b[184..188].copy_from_slice(&MAX_CHAIN_LEN.to_le_bytes()));
    assert_eq!(
        TokenBundle::decode(&longest).unwrap().chain_len,
        MAX_CHAIN_LEN
    );
}

#[test]
fn truncated_at_every_length() {
    let full = minted().encode();
    for n in 0..BUNDLE_LEN {
        assert_eq!(
            TokenBundle::decode(&full[..n]),
            Err(BundleError::Truncated),
            "length {n}"
        );
    }
    assert!(TokenBundle::decode(&full).is_ok());
    for extra in 1..=(MAX_TOKEN_LEN - BUNDLE_LEN) {
        let mut long = full.to_vec();
        long.resize(BUNDLE_LEN + extra, 0);
        assert_eq!(
            TokenBundle::decode(&long),
            Err(BundleError::BadLength),
            "length {}",
            BUNDLE_LEN + extra
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_is_refused_or_changes_a_field() {
    // A bit of the magic, version, padding or the token's magic, version
    // and length is always refused; one of the grant may be (a field
    // becomes zero or the chain too long); one of the token's key id,
    // nonce, body and tag, of the expiry or of the secrets never is (the
    // token's seal is not the decoder's to judge), and changes the bundle.
    let orig = minted();
    let full = orig.encode();
    let always = |byte: usize| byte < 14 || (16..20).contains(&byte) || (188..192).contains(&byte);
    let maybe = |byte: usize| (168..188).contains(&byte);
    for byte in 0..BUNDLE_LEN {
        for bit in 0..8 {
            let mut b = full;
            b[byte] ^= 1 << bit;
            match TokenBundle::decode(&b) {
                Ok(d) => {
                    assert!(!always(byte), "byte {byte} bit {bit} accepted");
                    assert_ne!(d, orig, "byte {byte} bit {bit}");
                    assert_eq!(d.encode(), b);
                }
                Err(_) => assert!(always(byte) || maybe(byte), "byte {byte} bit {bit} refused"),
            }
        }
    }
}

#[test]
fn errors_have_texts_and_errnos() {
    use BundleError::*;
    let all = [
        Truncated,
        BadLength,
        BadMagic,
        BadVersion,
        BadPadding,
        Token(TokenError::BadMagic),
        Token(TokenError::BadVersion),
        Token(TokenError::BadLength),
        BadChain,
        NoGrant,
    ];
    let mut texts: Vec<&str> = all.iter().map(|e| e.as_str()).collect();
    assert!(texts.iter().all(|t| !t.is_empty() && t.contains("token")));
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), all.len(), "distinct texts");
    assert_eq!(Truncated.errno(), EBADMSG);
    assert_eq!(BadVersion.errno(), EPROTONOSUPPORT);
    assert_eq!(Token(TokenError::BadVersion).errno(), EPROTONOSUPPORT);
    assert_eq!(Token(TokenError::BadLength).errno(), EBADMSG);
    assert_eq!(BadChain.errno(), EBADMSG);
    assert_eq!(NoGrant.errno(), EINVAL);
}

#[test]
fn debug_keeps_secrets() {
    let mut s = spec();
    s.session_key = [0xc3; 32];
    s.seed = [0xd4; 32];
    let b = TokenBundle::mint(&provider(), &Sha256, &NONCE, &s).unwrap();
    for text in [format!("{b:?}"), format!("{b:#?}"), format!("{s:?}")] {
        assert!(text.contains("<secret>"), "{text}");
        // Neither secret appears as Debug prints byte arrays.
        for secret in [&s.session_key, &s.seed] {
            for shown in [format!("{secret:?}"), format!("{secret:#?}")] {
                assert!(!text.contains(&shown[1..12]), "{shown} in {text}");
            }
        }
    }
    let text = format!("{b:?}");
    assert!(text.contains("granted_pages: 768"), "{text}");
    assert!(
        text.contains(&format!("key_id: {}", provider_key_id())),
        "{text}"
    );
}
