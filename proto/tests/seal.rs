// SPDX-License-Identifier: GPL-2.0
//! The sealed stream: round trips, and every way a record can be tampered
//! with: a flipped bit anywhere, reordering, replay, truncation, a record
//! from the other direction, another key, a plaintext record.

mod support;

use selfmig_proto::crypto::{SessionAead, TAG_LEN};
use selfmig_proto::seal::*;
use selfmig_proto::wire::{
    encode_record, BatchWriter, Header, PageBatch, PageContent, RecordKind, WireError, HEADER_LEN,
    MAX_PAYLOAD, PAGE_SIZE, VERSION,
};
use support::*;

fn key() -> Gcm {
    Gcm::with_key(&[0x33; 32]).unwrap()
}

/// A sealed record of `kind` carrying `payload`, as record number `seq`.
fn seal_one(
    sealer: &mut Sealer,
    aead: &Gcm,
    kind: RecordKind,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + payload.len() + TAG_LEN];
    let n = encode_record(kind, seq, payload, &mut buf).unwrap();
    let n = sealer.seal(aead, &mut buf, n).unwrap();
    assert_eq!(n, buf.len());
    buf
}

/// Opens `record` with `opener`; returns the plaintext header and payload.
fn open_one(
    opener: &mut Opener,
    aead: &Gcm,
    record: &[u8],
) -> Result<(Header, Vec<u8>), SealError> {
    if record.len() < HEADER_LEN {
        return Err(SealError::Truncated);
    }
    let raw: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().unwrap();
    let mut payload = record[HEADER_LEN..].to_vec();
    opener
        .open(aead, &raw, &mut payload)
        .map(|(h, p)| (h, p.to_vec()))
}

#[test]
fn nonce_layout() {
    let n = stream_nonce(Direction::SourceToTarget, 0x0102_0304_0506_0708);
    assert_eq!(&n[..4], b"S2T:");
    assert_eq!(&n[4..], &[8, 7, 6, 5, 4, 3, 2, 1]);
    let n = stream_nonce(Direction::TargetToSource, 1);
    assert_eq!(&n[..4], b"T2S:");
}

#[test]
fn stream_keys_differ_per_connection() {
    let sk = [9u8; 32];
    let k = stream_key(&Sha256, &sk, &[1; 16], &[2; 16]);
    assert_eq!(k, stream_key(&Sha256, &sk, &[1; 16], &[2; 16]));
    assert_ne!(k, stream_key(&Sha256, &sk, &[1; 16], &[3; 16]));
    assert_ne!(k, stream_key(&Sha256, &sk, &[3; 16], &[2; 16]));
    assert_ne!(k, stream_key(&Sha256, &[8; 32], &[1; 16], &[2; 16]));
    assert_ne!(k, sk);
}

#[test]
fn round_trip_in_both_directions() {
    let aead = key();
    let mut s2t = Sealer::new(Direction::SourceToTarget);
    let mut t2s = Sealer::new(Direction::TargetToSource);
    let mut at_target = Opener::new(Direction::SourceToTarget);
    let mut at_source = Opener::new(Direction::TargetToSource);
    for i in 0..5u32 {
        let payload = i.to_le_bytes();
        let rec = seal_one(&mut s2t, &aead, RecordKind::Abort, i, &payload);
        // Sealed: the kind has the sealed bit, the length counts the tag,
        // and the payload is not in clear.
        let kind = u16::from_le_bytes([rec[6], rec[7]]);
        assert_eq!(kind, RecordKind::Abort as u16 | KIND_SEALED);
        assert_eq!(u32::from_le_bytes(rec[8..12].try_into().unwrap()), 4 + 16);
        let (h, p) = open_one(&mut at_target, &aead, &rec).unwrap();
        assert_eq!(h.kind, RecordKind::Abort);
        assert_eq!(h.len, 4);
        assert_eq!(h.seq, i);
        assert_eq!(p, payload);
        let rec = seal_one(&mut t2s, &aead, RecordKind::Complete, i, &[]);
        assert_eq!(rec.len(), HEADER_LEN + TAG_LEN);
        let (h, p) = open_one(&mut at_source, &aead, &rec).unwrap();
        assert_eq!(h.kind, RecordKind::Complete);
        assert!(p.is_empty());
    }
    assert_eq!(s2t.counter(), 5);
    assert_eq!(at_target.counter(), 5);
}

#[test]
fn page_batches_seal_in_place() {
    let aead = key();
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + TAG_LEN];
    let mut w = BatchWriter::new(&mut buf, 3).unwrap();
    w.push_data(10, &[0x5a; PAGE_SIZE]).unwrap();
    w.push_zero(11).unwrap();
    let len = w.finish(0).unwrap().len();
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let n = sealer.seal(&aead, &mut buf, len).unwrap();
    assert_eq!(n, len + TAG_LEN);
    assert!(!buf[..n].windows(64).any(|w| w == [0x5a; 64]));
    let mut opener = Opener::new(Direction::SourceToTarget);
    let (h, plain) = open_one(&mut opener, &aead, &buf[..n]).unwrap();
    assert_eq!(h.kind, RecordKind::PageBatch);
    let batch = PageBatch::decode(&plain).unwrap();
    assert_eq!(batch.round, 3);
    let pages: Vec<_> = batch.pages().collect();
    assert_eq!(pages[0].pfn, 10);
    assert_eq!(pages[0].content, PageContent::Data(&[0x5a; PAGE_SIZE]));
    assert_eq!(pages[1].content, PageContent::Zero);
}

#[test]
fn a_flipped_bit_anywhere_fails() {
    let aead = key();
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let rec = seal_one(&mut sealer, &aead, RecordKind::Abort, 0, &[1, 2, 3, 4]);
    for bit in 0..rec.len() * 8 {
        let mut r = rec.clone();
        r[bit / 8] ^= 1 << (bit % 8);
        let mut opener = Opener::new(Direction::SourceToTarget);
        let got = open_one(&mut opener, &aead, &r);
        assert!(got.is_err(), "bit {bit} went unnoticed");
        assert!(opener.failed());
        // Past the header's checks, every flip is an authentication
        // failure; in the header it may be caught earlier.
        if bit / 8 >= HEADER_LEN || (12..16).contains(&(bit / 8)) {
            assert_eq!(got, Err(SealError::Auth), "bit {bit}");
        }
    }
}

#[test]
fn reordering_fails() {
    let aead = key();
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let r0 = seal_one(&mut sealer, &aead, RecordKind::Abort, 0, &[0; 4]);
    let r1 = seal_one(&mut sealer, &aead, RecordKind::Abort, 1, &[1; 4]);
    let mut opener = Opener::new(Direction::SourceToTarget);
    assert_eq!(open_one(&mut opener, &aead, &r1), Err(SealError::Auth));
    // Dead after the first failure, even for the right record.
    assert_eq!(open_one(&mut opener, &aead, &r0), Err(SealError::Failed));
    // A dropped record is the same as a reordering.
    let r2 = seal_one(&mut sealer, &aead, RecordKind::Abort, 2, &[2; 4]);
    let mut opener = Opener::new(Direction::SourceToTarget);
    open_one(&mut opener, &aead, &r0).unwrap();
    assert_eq!(open_one(&mut opener, &aead, &r2), Err(SealError::Auth));
}

#[test]
fn replay_fails() {
    let aead = key();
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let r0 = seal_one(&mut sealer, &aead, RecordKind::Abort, 0, &[0; 4]);
    let mut opener = Opener::new(Direction::SourceToTarget);
    open_one(&mut opener, &aead, &r0).unwrap();
    assert_eq!(open_one(&mut opener, &aead, &r0), Err(SealError::Auth));
}

#[test]
fn truncation_fails() {
    let aead = key();
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let rec = seal_one(&mut sealer, &aead, RecordKind::Hello, 0, &[7; 100]);
    // Cut short, header untouched: the payload is not what it says.
    for cut in HEADER_LEN..rec.len() {
        let mut opener = Opener::new(Direction::SourceToTarget);
        assert_eq!(
            open_one(&mut opener, &aead, &rec[..cut]),
            Err(SealError::Truncated),
            "cut {cut}"
        );
    }
    // Cut short and re-framed (length fixed up): fails authentication, or
    // is too short to hold a tag.
    for cut in HEADER_LEN..rec.len() {
        let mut r = rec[..cut].to_vec();
        let len = (cut - HEADER_LEN) as u32;
        r[8..12].copy_from_slice(&len.to_le_bytes());
        let mut opener = Opener::new(Direction::SourceToTarget);
        let expected = if (len as usize) < TAG_LEN {
            SealError::Truncated
        } else {
            SealError::Auth
        };
        assert_eq!(open_one(&mut opener, &aead, &r), Err(expected), "cut {cut}");
    }
    // Longer than it says.
    let mut long = rec.clone();
    long.push(0);
    let mut opener = Opener::new(Direction::SourceToTarget);
    assert_eq!(
        open_one(&mut opener, &aead, &long),
        Err(SealError::TrailingBytes)
    );
}

#[test]
fn a_record_from_the_other_direction_fails() {
    let aead = key();
    // The target's record reflected back at it.
    let mut t2s = Sealer::new(Direction::TargetToSource);
    let rec = seal_one(&mut t2s, &aead, RecordKind::Abort, 0, &[5; 4]);
    let mut at_target = Opener::new(Direction::SourceToTarget);
    assert_eq!(open_one(&mut at_target, &aead, &rec), Err(SealError::Auth));
}

#[test]
fn another_key_fails() {
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let rec = seal_one(&mut sealer, &key(), RecordKind::Abort, 0, &[5; 4]);
    let other = Gcm::with_key(&[0x34; 32]).unwrap();
    let mut opener = Opener::new(Direction::SourceToTarget);
    assert_eq!(open_one(&mut opener, &other, &rec), Err(SealError::Auth));
}

#[test]
fn plaintext_and_bad_headers_are_refused() {
    let aead = key();
    let mut plain = vec![0u8; HEADER_LEN + 4];
    encode_record(RecordKind::Abort, 0, &[1; 4], &mut plain).unwrap();
    let mut opener = Opener::new(Direction::SourceToTarget);
    assert_eq!(
        open_one(&mut opener, &aead, &plain),
        Err(SealError::NotSealed)
    );
    let raw = |kind: u16, len: u32| -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(b"SMIG");
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&kind.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h
    };
    let s = KIND_SEALED;
    assert_eq!(
        decode_sealed_header(&raw(RecordKind::Abort as u16 | s, 20))
            .unwrap()
            .len,
        20
    );
    assert_eq!(
        decode_sealed_header(&raw(RecordKind::Abort as u16 | s, 15)),
        Err(SealError::Truncated)
    );
    assert!(matches!(
        decode_sealed_header(&raw(RecordKind::Abort as u16 | s, 21)),
        Err(SealError::Header(WireError::Oversize { .. }))
    ));
    assert!(matches!(
        decode_sealed_header(&raw(RecordKind::PageBatch as u16 | s, u32::MAX)),
        Err(SealError::Header(WireError::Oversize { .. }))
    ));
    assert_eq!(
        decode_sealed_header(&raw(99 | s, 20)),
        Err(SealError::Header(WireError::UnknownKind(99)))
    );
    assert_eq!(
        decode_sealed_header(&raw(99, 20)),
        Err(SealError::Header(WireError::UnknownKind(99)))
    );
    let mut bad = raw(RecordKind::Abort as u16 | s, 20);
    bad[0] = b'X';
    assert_eq!(
        decode_sealed_header(&bad),
        Err(SealError::Header(WireError::BadMagic))
    );
    let mut bad = raw(RecordKind::Abort as u16 | s, 20);
    bad[4] = 9;
    assert!(matches!(
        decode_sealed_header(&bad),
        Err(SealError::Header(WireError::VersionMismatch { got: 9 }))
    ));
    // The plaintext decoder refuses sealed records.
    assert!(Header::decode(&raw(RecordKind::Abort as u16 | s, 20)).is_err());
}

#[test]
fn sealer_checks_its_input() {
    let aead = key();
    let mut sealer = Sealer::new(Direction::SourceToTarget);
    let mut buf = vec![0u8; HEADER_LEN + 4 + TAG_LEN];
    let n = encode_record(RecordKind::Abort, 0, &[1; 4], &mut buf).unwrap();
    assert_eq!(
        sealer.seal(&aead, &mut buf[..n + TAG_LEN - 1], n),
        Err(SealError::NoSpace)
    );
    assert_eq!(
        sealer.seal(&aead, &mut buf, n - 1),
        Err(SealError::Truncated)
    );
    assert_eq!(
        sealer.seal(&aead, &mut buf, n + 1),
        Err(SealError::TrailingBytes)
    );
    assert_eq!(sealer.seal(&aead, &mut buf, 3), Err(SealError::Truncated));
    assert_eq!(sealer.counter(), 0);
    assert_eq!(sealer.seal(&aead, &mut buf, n), Ok(n + TAG_LEN));
    // Sealing twice is refused: the header is no longer a plaintext one.
    assert!(matches!(
        sealer.seal(&aead, &mut buf, n),
        Err(SealError::Header(_))
    ));
}

#[test]
fn errors_are_described() {
    for e in [
        SealError::Header(WireError::BadMagic),
        SealError::NotSealed,
        SealError::Truncated,
        SealError::TrailingBytes,
        SealError::Auth,
        SealError::Exhausted,
        SealError::NoSpace,
        SealError::Crypto,
        SealError::Failed,
    ] {
        assert!(!e.as_str().is_empty());
        assert!(e.errno() > 0);
    }
}
