// SPDX-License-Identifier: GPL-2.0
//! The admission state machine, driven as the loader drives it: a valid
//! migration, and each way a source (or the network) can get refused.

mod support;

use selfmig_proto::admission::*;
use selfmig_proto::chain::{ChainError, Payment};
use selfmig_proto::crypto::SessionAead;
use selfmig_proto::machine::{MachineDesc, Mismatch, RamRange};
use selfmig_proto::replay::{ReplayEntry, ReplaySet};
use selfmig_proto::seal::{stream_key, Direction, Sealer};
use selfmig_proto::token::{Token, TokenError, TOKEN_LEN};
use selfmig_proto::wire::{
    decode_abort, encode_record, HelloReply, RecordKind, Refusal, WireError, HEADER_LEN,
    TOKEN_RECORD_LEN,
};
use support::*;

const NONCE: [u8; 12] = [1; 12];

/// Runs `records` through a fresh connection on `loader`.
fn run(loader: &mut Loader, records: &[Vec<u8>]) -> (Vec<Seen>, Vec<Vec<u8>>, Phase) {
    loader.run(records)
}

fn last(seen: &[Seen]) -> &Seen {
    seen.last().unwrap()
}

#[test]
fn a_valid_migration_is_admitted_and_completes() {
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let (_, records) = valid_stream(&token, &bytes);
    let mut loader = Loader::new(8);
    let stream: Vec<u8> = records.concat();
    let mut adm = loader.admission(NOW).with_fixed_us(23_456);
    assert_eq!(adm.phase(), Phase::AwaitToken);
    let (seen, replies) = feed(&mut adm, &stream);
    assert_eq!(adm.phase(), Phase::Done);
    assert_eq!(adm.pages_used(), 768);
    assert_eq!(adm.pages_paid(), 768);
    assert_eq!(adm.units_paid(), 12);
    assert!(adm.has_frame(1535));
    assert!(!adm.has_frame(300));
    let grant = adm.grant().unwrap();
    assert_eq!(grant.pages, 768);
    assert_eq!(grant.vcpus, 2);
    assert_eq!(grant.unit_pages, 64);
    assert_eq!(grant.price_per_unit, 5);
    assert_eq!(grant.chain_len, 12);
    assert_eq!(seen[0], Seen::TokenAccepted(grant));
    assert_eq!(seen[1], Seen::Admitted);
    assert_eq!(
        seen[2],
        Seen::Paid {
            units: 1,
            pages_paid: 64
        }
    );
    assert_eq!(seen[3], Seen::Pages((0..32).collect()));
    assert!(matches!(seen[seen.len() - 2], Seen::Complete(_)));
    assert_eq!(last(&seen), &Seen::Commit(0));
    assert!(!seen
        .iter()
        .any(|s| matches!(s, Seen::Refused(_) | Seen::Cut)));

    // Two replies: the plaintext token reply with the target's salt, and
    // the sealed hello reply, which the source can open.
    assert_eq!(replies.len(), 2);
    let mut check = Source::new(&token);
    check.tx.take();
    let tr = check.token_reply(&replies[0]);
    assert!(tr.accepted());
    assert_eq!(tr.salt, TARGET_SALT);
    let (h, p) = check.open(&replies[1]);
    assert_eq!(h.kind, RecordKind::HelloReply);
    let hello = HelloReply::decode(&p).unwrap();
    assert_eq!(hello.status, Refusal::Accepted);
    // With the target's share of the downtime, for the source's policy.
    assert_eq!(hello.detail, 23_456);

    // The loader's own records are sealed for the source too.
    let mut out = [0u8; 64];
    let n = adm
        .seal_outbound(RecordKind::Complete, &[], &mut out)
        .unwrap();
    let (h, _) = check.open(&out[..n]);
    assert_eq!(h.kind, RecordKind::Complete);
}

#[test]
fn a_forged_token_is_refused_with_its_reason() {
    let token = sample_token();
    let mut bytes = mint(&token, NONCE);
    bytes[60] ^= 0x10;
    let (_, records) = valid_stream(&token, &bytes);
    let (seen, replies, phase) = run(&mut Loader::new(8), &records);
    assert_eq!(seen, vec![Seen::Refused(Reason::Token(TokenError::Forged))]);
    assert_eq!(phase, Phase::Closed);
    // The refusal is a plaintext token reply carrying the code.
    let mut src = Source::new(&token);
    src.tx.take();
    let r = src.token_reply(&replies[0]);
    assert!(!r.accepted());
    assert_eq!(r.code, 106);
    assert_eq!(
        Reason::from_code(r.code),
        Some(Reason::Token(TokenError::Forged))
    );
}

#[test]
fn an_expired_token_is_refused() {
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let (_, records) = valid_stream(&token, &bytes);
    let (seen, _, _) = Loader::new(8).run_at(&records, token.expiry);
    assert_eq!(
        seen,
        vec![Seen::Refused(Reason::Token(TokenError::Expired))]
    );
}

#[test]
fn a_replayed_token_is_refused() {
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let (_, records) = valid_stream(&token, &bytes);
    let mut loader = Loader::new(8);
    assert_eq!(loader.run(&records).2, Phase::Done);
    // The token again, or the recorded session replayed whole.
    let again = loader.run(&records[..1]);
    assert_eq!(again.0, vec![Seen::Refused(Reason::Replayed)]);
    let again = loader.run(&records);
    assert_eq!(again.0, vec![Seen::Refused(Reason::Replayed)]);
}

#[test]
fn a_token_without_its_key_cannot_be_spent() {
    // Someone replays a captured token but cannot seal: the token is not
    // burnt, and its owner migrates afterwards.
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let (_, records) = valid_stream(&token, &bytes);
    let mut thief = Source::new(&token);
    thief.session_key = [0; 32];
    let thief_token = thief.token_record(&bytes);
    let key = stream_key(&Sha256, &thief.session_key, &thief.salt, &TARGET_SALT);
    thief.aead = Some(Gcm::with_key(&key).unwrap());
    let thief_hello = thief.hello(&local_desc());
    let mut loader = Loader::new(8);
    let thief = loader.run(&[thief_token, thief_hello]);
    assert_eq!(thief.0[1], Seen::Refused(Reason::StreamAuth));
    assert_eq!(loader.run(&records).2, Phase::Done);
}

#[test]
fn a_full_replay_set_refuses_rather_than_forgets() {
    let t1 = sample_token();
    let b1 = mint(&t1, NONCE);
    let (_, r1) = valid_stream(&t1, &b1);
    let t2 = Token {
        id: [10; 16],
        expiry: NOW + 7200,
        ..sample_token()
    };
    let b2 = mint(&t2, NONCE);
    let (_, r2) = valid_stream(&t2, &b2);
    let mut loader = Loader::new(1);
    assert_eq!(loader.run(&r1).2, Phase::Done);
    assert_eq!(loader.run(&r2).0, vec![Seen::Refused(Reason::ReplayFull)]);
    // Once the first has expired, its slot is reused.
    let later = loader.run_at(&r2, t1.expiry);
    assert_eq!(later.2, Phase::Done);
}

#[test]
fn a_grant_smaller_than_the_guest_is_refused() {
    for (token, reason) in [
        (
            Token {
                granted_pages: 767,
                ..sample_token()
            },
            Reason::GuestTooLarge,
        ),
        (
            Token {
                granted_vcpus: 1,
                ..sample_token()
            },
            Reason::TooManyVcpus,
        ),
    ] {
        let bytes = mint(&token, NONCE);
        let (mut src, records) = valid_stream(&token, &bytes);
        let (seen, replies, phase) = run(&mut Loader::new(8), &records);
        assert!(matches!(seen[0], Seen::TokenAccepted(_)));
        assert_eq!(seen[1], Seen::Refused(reason));
        assert_eq!(phase, Phase::Closed);
        // After the token, refusals are sealed aborts the source can read.
        let mut fresh = Source::new(&token);
        fresh.aead = src.aead.take();
        fresh.rx.take();
        let (h, p) = fresh.open(&replies[1]);
        assert_eq!(h.kind, RecordKind::Abort);
        assert_eq!(decode_abort(&p), Ok(reason.code()));
    }
}

#[test]
fn a_different_machine_is_refused() {
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let mut src = Source::new(&token);
    let tok = src.token_record(&bytes);
    let key = stream_key(&Sha256, &src.session_key, &src.salt, &TARGET_SALT);
    src.aead = Some(Gcm::with_key(&key).unwrap());
    let mut other = MachineDesc::new(2, 5, [1, 2, 3, 4]);
    other
        .push_range(RamRange {
            start_pfn: 0,
            nr_pages: 256,
        })
        .unwrap();
    let hello = src.hello(&other);
    let (seen, _, _) = run(&mut Loader::new(8), &[tok.clone(), hello]);
    assert_eq!(
        seen[1],
        Seen::Refused(Reason::Mismatch(Mismatch::PagingLevels))
    );
    assert_eq!(Reason::Mismatch(Mismatch::PagingLevels).code(), 124);
    // A hello that is no machine description at all.
    let mut src2 = Source::new(&token);
    let tok2 = src2.token_record(&bytes);
    src2.aead = Some(Gcm::with_key(&key).unwrap());
    let bad = src2.sealed(RecordKind::Hello, &[0; 10]);
    let (seen, _, _) = run(&mut Loader::new(8), &[tok2, bad]);
    assert_eq!(seen[1], Seen::Refused(Reason::BadHello));
}

/// A source admitted by the loader: token and hello records, ready for
/// more.
fn admitted(token: &Token) -> (Source, Vec<Vec<u8>>) {
    let bytes = mint(token, NONCE);
    let mut src = Source::new(token);
    let tok = src.token_record(&bytes);
    let key = stream_key(&Sha256, &src.session_key, &src.salt, &TARGET_SALT);
    src.aead = Some(Gcm::with_key(&key).unwrap());
    let hello = src.hello(&local_desc());
    (src, vec![tok, hello])
}

#[test]
fn unpaid_pages_are_refused() {
    let token = sample_token();
    // No payment at all.
    let (mut src, mut records) = admitted(&token);
    records.push(src.batch(&[0, 1, 2]));
    let (seen, replies, _) = run(&mut Loader::new(8), &records);
    assert_eq!(
        last(&seen),
        &Seen::Refused(Reason::Payment(ChainError::Unpaid))
    );
    assert_eq!(replies.len(), 3);
    // One unit (64 pages), then 96 pages: the 65th is refused.
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(1));
    let frames = local_frames();
    records.push(src.batch(&frames[0..32]));
    records.push(src.batch(&frames[32..64]));
    records.push(src.batch(&frames[64..96]));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(seen[3], Seen::Pages(frames[0..32].to_vec()));
    assert_eq!(seen[4], Seen::Pages(frames[32..64].to_vec()));
    assert_eq!(seen[5], Seen::Refused(Reason::Payment(ChainError::Unpaid)));
}

#[test]
fn frames_sent_again_cost_nothing_more() {
    let token = sample_token();
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(1));
    let frames = local_frames();
    for _ in 0..5 {
        records.push(src.batch(&frames[0..32]));
        records.push(src.batch(&frames[32..64]));
    }
    let mut loader = Loader::new(8);
    let (seen, _, phase) = run(&mut loader, &records);
    assert_eq!(phase, Phase::Streaming);
    assert!(!seen.iter().any(|s| matches!(s, Seen::Refused(_))));
}

#[test]
fn payment_refusals() {
    // A chain longer than the grant needs, so that overpayment is possible.
    let token = Token {
        chain_len: 20,
        anchor: selfmig_proto::chain::chain_anchor(&Sha256, &SEED, 20),
        ..sample_token()
    };
    let cases: Vec<(Vec<u32>, Reason)> = vec![
        (vec![2, 1], ChainError::StaleLink.into()),
        (vec![1, 1], ChainError::StaleLink.into()),
        (vec![13], ChainError::Overpayment.into()),
        (vec![21], ChainError::BeyondChain.into()),
        (vec![0], ChainError::StaleLink.into()),
    ];
    for (indices, reason) in cases {
        let (mut src, mut records) = admitted(&token);
        for &i in &indices {
            records.push(src.payment(i));
        }
        let (seen, _, _) = run(&mut Loader::new(8), &records);
        assert_eq!(last(&seen), &Seen::Refused(reason), "{indices:?}");
    }
    // A wrong link, and a true link claimed at another index.
    let (mut src, mut records) = admitted(&token);
    let w2 = src.link(2);
    records.push(src.sealed(
        RecordKind::Payment,
        &Payment { index: 1, link: w2 }.encode(),
    ));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(ChainError::WrongLink.into()));
    // The whole grant at once is fine.
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(12));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(
        last(&seen),
        &Seen::Paid {
            units: 12,
            pages_paid: 768
        }
    );
    // A malformed payment record.
    let (mut src, mut records) = admitted(&token);
    let mut p = Payment {
        index: 1,
        link: src.link(1),
    }
    .encode();
    p[4] = 1;
    records.push(src.sealed(RecordKind::Payment, &p));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(
        last(&seen),
        &Seen::Refused(Reason::Malformed(WireError::BadField))
    );
}

#[test]
fn pages_outside_the_ram_map_are_refused() {
    let token = sample_token();
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(1));
    records.push(src.batch(&[0, 300]));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::PfnOutsideMap));
}

/// The valid stream with record `i` changed by `edit`.
fn tampered(i: usize, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<Vec<u8>> {
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let (_, mut records) = valid_stream(&token, &bytes);
    edit(&mut records[i]);
    records
}

#[test]
fn a_flipped_bit_mid_stream_aborts() {
    let token = sample_token();
    // Record 6 is a page batch; flip a bit in its payload, its tag, and
    // its header's counter.
    for pos in [HEADER_LEN + 100, usize::MAX, 13] {
        let records = tampered(6, |r| {
            let at = if pos == usize::MAX { r.len() - 1 } else { pos };
            r[at] ^= 4;
        });
        let (seen, replies, phase) = run(&mut Loader::new(8), &records);
        let expected = if pos == 13 {
            Reason::OutOfOrder
        } else {
            Reason::StreamAuth
        };
        assert_eq!(last(&seen), &Seen::Refused(expected), "pos {pos}");
        assert_eq!(phase, Phase::Closed);
        // The source reads why, sealed.
        let bytes = mint(&token, NONCE);
        let (mut src, _) = valid_stream(&token, &bytes);
        let mut reader = Source::new(&token);
        reader.aead = src.aead.take();
        reader.rx.take();
        reader.open(&replies[1]);
        let (h, p) = reader.open(&replies[2]);
        assert_eq!(h.kind, RecordKind::Abort);
        assert_eq!(decode_abort(&p), Ok(expected.code()));
    }
}

#[test]
fn reordered_and_replayed_records_abort() {
    let token = sample_token();
    let bytes = mint(&token, NONCE);
    let (_, mut records) = valid_stream(&token, &bytes);
    records.swap(3, 4);
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::OutOfOrder));
    // With the counters in the headers swapped back, the tags fail.
    let (_, mut records) = valid_stream(&token, &bytes);
    records.swap(3, 4);
    let (a, b) = (records[3][12..16].to_vec(), records[4][12..16].to_vec());
    records[3][12..16].copy_from_slice(&b);
    records[4][12..16].copy_from_slice(&a);
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::StreamAuth));
    // A record sent twice.
    let (_, mut records) = valid_stream(&token, &bytes);
    let dup = records[3].clone();
    records.insert(4, dup);
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::OutOfOrder));
}

#[test]
fn a_record_from_the_other_direction_aborts() {
    let token = sample_token();
    let (src, records) = admitted(&token);
    let aead = src.aead.as_ref().unwrap();
    let p = Payment {
        index: 1,
        link: src.link(1),
    }
    .encode();
    // Sealed with the right key, counter and header, but in the target's
    // direction (at the target's counters 0 and 1).
    for skip in 0..2 {
        let mut wrong = Sealer::new(Direction::TargetToSource);
        for _ in 0..skip {
            let mut scratch = vec![0u8; HEADER_LEN + 4 + 16];
            let m = encode_record(RecordKind::Abort, 0, &[0; 4], &mut scratch).unwrap();
            wrong.seal(aead, &mut scratch, m).unwrap();
        }
        let mut buf = vec![0u8; HEADER_LEN + p.len() + 16];
        let n = encode_record(RecordKind::Payment, 2, &p, &mut buf).unwrap();
        wrong.seal(aead, &mut buf, n).unwrap();
        let mut r = records.clone();
        r.push(buf);
        let (seen, _, _) = run(&mut Loader::new(8), &r);
        assert_eq!(
            last(&seen),
            &Seen::Refused(Reason::StreamAuth),
            "skip {skip}"
        );
    }
    // A target's reply reflected back is not even a kind it accepts.
    let (_, replies, _) = run(&mut Loader::new(8), &records);
    let mut r = records.clone();
    r.push(replies[1].clone());
    let (seen, _, _) = run(&mut Loader::new(8), &r);
    assert!(matches!(last(&seen), Seen::Refused(_)));
}

#[test]
fn a_truncated_stream_never_completes() {
    // A short complete migration (a few pages), cut at every byte.
    let token = sample_token();
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(1));
    records.push(src.batch(&[0, 1, 2, 3]));
    records.push(src.cpu_context(2, 3));
    records.push(src.sealed(RecordKind::Commit, &[]));
    let stream: Vec<u8> = records.concat();
    let mut loader = Loader::new(8);
    assert_eq!(loader.run(std::slice::from_ref(&stream)).2, Phase::Done);
    for cut in 0..stream.len() {
        let mut loader = Loader::new(8);
        let (seen, _, phase) = loader.run(&[stream[..cut].to_vec()]);
        assert_ne!(phase, Phase::Done, "cut {cut}");
        assert!(
            !seen
                .iter()
                .any(|s| matches!(s, Seen::Commit(_) | Seen::Refused(_))),
            "cut {cut}: {seen:?}"
        );
    }
    // A record cut short and re-framed fails authentication.
    let records = tampered(6, |r| {
        r.truncate(r.len() - 100);
        let len = (r.len() - HEADER_LEN) as u32;
        r[8..12].copy_from_slice(&len.to_le_bytes());
    });
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::StreamAuth));
}

#[test]
fn the_first_record_must_be_a_token() {
    let token = sample_token();
    let mut src = Source::new(&token);
    let mut hello = vec![0u8; HEADER_LEN + MachineDesc::ENCODED_LEN];
    encode_record(RecordKind::Hello, 0, &local_desc().encode(), &mut hello).unwrap();
    let (seen, replies, _) = run(&mut Loader::new(8), &[hello]);
    assert_eq!(seen, vec![Seen::Refused(Reason::NoToken)]);
    src.tx.take();
    assert_eq!(src.token_reply(&replies[0]).code, 114);
    // Garbage.
    let (seen, _, _) = run(&mut Loader::new(8), &[vec![0xff; 64]]);
    assert_eq!(
        seen,
        vec![Seen::Refused(Reason::BadRecord(WireError::BadMagic))]
    );
    // A token record of the wrong length.
    let bytes = mint(&token, NONCE);
    let mut rec = vec![0u8; HEADER_LEN + TOKEN_LEN];
    encode_record(RecordKind::Token, 0, &bytes, &mut rec).unwrap();
    let (seen, _, _) = run(&mut Loader::new(8), &[rec]);
    assert_eq!(
        seen,
        vec![Seen::Refused(Reason::Token(TokenError::Truncated))]
    );
    let mut rec = vec![0u8; HEADER_LEN + 30];
    encode_record(RecordKind::Token, 0, &[b'X'; 30], &mut rec).unwrap();
    let (seen, _, _) = run(&mut Loader::new(8), &[rec]);
    assert_eq!(
        seen,
        vec![Seen::Refused(Reason::Token(TokenError::BadMagic))]
    );
    // A token record whose counter is not 0.
    let mut src = Source::new(&token);
    src.tx.take();
    let rec = src.token_record(&bytes);
    let (seen, _, _) = run(&mut Loader::new(8), &[rec]);
    assert_eq!(seen, vec![Seen::Refused(Reason::OutOfOrder)]);
    assert_eq!(TOKEN_RECORD_LEN, TOKEN_LEN + 16);
}

#[test]
fn plaintext_after_the_token_is_refused() {
    let token = sample_token();
    let (_, records) = admitted(&token);
    let mut plain = vec![0u8; HEADER_LEN + MachineDesc::ENCODED_LEN];
    encode_record(RecordKind::Hello, 1, &local_desc().encode(), &mut plain).unwrap();
    let (seen, _, _) = run(&mut Loader::new(8), &[records[0].clone(), plain]);
    assert_eq!(last(&seen), &Seen::Refused(Reason::NotSealed));
}

#[test]
fn records_out_of_phase_are_refused() {
    let token = sample_token();
    // Pages before the hello.
    let bytes = mint(&token, NONCE);
    let mut src = Source::new(&token);
    let tok = src.token_record(&bytes);
    let key = stream_key(&Sha256, &src.session_key, &src.salt, &TARGET_SALT);
    src.aead = Some(Gcm::with_key(&key).unwrap());
    let batch = src.batch(&[0]);
    let (seen, _, _) = run(&mut Loader::new(8), &[tok, batch]);
    assert_eq!(last(&seen), &Seen::Refused(Reason::Unexpected));
    // A commit while streaming; a second token.
    let (mut src, mut records) = admitted(&token);
    records.push(src.sealed(RecordKind::Commit, &[]));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::Unexpected));
}

#[test]
fn the_resume_frames_must_be_in_the_image() {
    let token = sample_token();
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(1));
    records.push(src.batch(&[0, 1, 2, 3]));
    records.push(src.cpu_context(2, 100));
    let (seen, _, _) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Refused(Reason::ResumeOutsideImage));
    let (mut src, mut records) = admitted(&token);
    records.push(src.payment(1));
    records.push(src.batch(&[0, 1, 2, 3]));
    records.push(src.cpu_context(2, 3));
    records.push(src.sealed(RecordKind::Commit, &[]));
    let (seen, _, phase) = run(&mut Loader::new(8), &records);
    assert_eq!(last(&seen), &Seen::Commit(0));
    assert_eq!(phase, Phase::Done);
}

#[test]
fn verify_hashes_pass_through_and_the_source_may_abort() {
    let token = sample_token();
    let (mut src, mut records) = admitted(&token);
    records.push(src.sealed(RecordKind::VerifyHashes, &[0; 24]));
    records.push(src.sealed(RecordKind::Abort, &7u32.to_le_bytes()));
    let (seen, replies, phase) = run(&mut Loader::new(8), &records);
    assert_eq!(seen[2], Seen::Verify(24));
    assert_eq!(seen[3], Seen::SourceAborted(7));
    assert_eq!(phase, Phase::Closed);
    assert_eq!(replies.len(), 2);
}

#[test]
fn nothing_is_accepted_after_a_refusal() {
    let token = sample_token();
    let mut loader = Loader::new(8);
    let mut adm = loader.admission(NOW);
    let mut reply = Reply::new();
    assert!(adm.begin(&[0; HEADER_LEN], &mut reply).is_err());
    assert!(!reply.is_empty());
    assert_eq!(adm.phase(), Phase::Closed);
    let rec = Source::new(&token).token_record(&mint(&token, NONCE));
    let raw: [u8; HEADER_LEN] = rec[..HEADER_LEN].try_into().unwrap();
    assert_eq!(adm.begin(&raw, &mut reply), Err(Reason::Closed));
    assert!(reply.is_empty());
    assert_eq!(adm.finish(&mut [], &mut reply).err(), Some(Reason::Closed));
    let mut out = [0u8; 64];
    assert_eq!(
        adm.seal_outbound(RecordKind::Complete, &[], &mut out),
        Err(Reason::Closed)
    );
}

#[test]
fn finish_without_begin_and_begin_twice_are_refused() {
    let token = sample_token();
    let rec = Source::new(&token).token_record(&mint(&token, NONCE));
    let raw: [u8; HEADER_LEN] = rec[..HEADER_LEN].try_into().unwrap();
    let mut loader = Loader::new(8);
    let mut adm = loader.admission(NOW);
    let mut reply = Reply::new();
    assert_eq!(adm.begin(&raw, &mut reply), Ok(TOKEN_RECORD_LEN));
    assert_eq!(adm.begin(&raw, &mut reply), Err(Reason::Unexpected));
    drop(adm);
    let mut adm = loader.admission(NOW);
    assert_eq!(
        adm.finish(&mut [0; 4], &mut reply).err(),
        Some(Reason::Unexpected)
    );
}

#[test]
fn setup_checks_the_frame_bitmap() {
    let loader = Loader::new(1);
    let mut replay = ReplaySet::new(vec![ReplayEntry::EMPTY; 1]);
    let words = Adm::frame_words(&loader.local);
    assert_eq!(words, 1536 / 64);
    let mut small = vec![0u64; words - 1];
    assert!(matches!(
        Adm::new(
            &loader.provider,
            &Sha256,
            &mut replay,
            &mut small,
            loader.local,
            provider_key_id(),
            NOW,
            TARGET_SALT,
        ),
        Err(SetupError::FramesTooSmall)
    ));
    let mut frames = vec![u64::MAX; words];
    let empty = MachineDesc::new(1, 4, [0; 4]);
    assert!(matches!(
        Adm::new(
            &loader.provider,
            &Sha256,
            &mut replay,
            &mut frames,
            empty,
            provider_key_id(),
            NOW,
            TARGET_SALT,
        ),
        Err(SetupError::NoRam)
    ));
    // The bitmap is cleared.
    let adm = Adm::new(
        &loader.provider,
        &Sha256,
        &mut replay,
        &mut frames,
        loader.local,
        provider_key_id(),
        NOW,
        TARGET_SALT,
    )
    .unwrap();
    assert!(!adm.has_frame(0));
}

#[test]
fn reason_codes_are_unique_stable_and_round_trip() {
    use selfmig_proto::token::TokenError as T;
    let mut all: Vec<Reason> = vec![
        T::Truncated,
        T::BadMagic,
        T::BadVersion,
        T::BadLength,
        T::UnknownKey,
        T::Forged,
        T::Expired,
        T::NoGrant,
        T::Malformed,
        T::Crypto,
        T::NoSpace,
    ]
    .into_iter()
    .map(Reason::Token)
    .collect();
    all.extend([
        Reason::Replayed,
        Reason::ReplayFull,
        Reason::NoToken,
        Reason::BadHello,
        Reason::GuestTooLarge,
        Reason::TooManyVcpus,
        Reason::StreamAuth,
        Reason::NotSealed,
        Reason::StreamTruncated,
        Reason::StreamExhausted,
        Reason::BadRecord(WireError::BadField),
        Reason::OutOfOrder,
        Reason::Unexpected,
        Reason::Malformed(WireError::BadField),
        Reason::PfnOutsideMap,
        Reason::ResumeOutsideImage,
        Reason::Closed,
        Reason::Crypto,
    ]);
    for m in 1..=6 {
        all.push(Reason::Mismatch(Mismatch::from_u32(m).unwrap()));
    }
    for e in [
        ChainError::WrongLink,
        ChainError::StaleLink,
        ChainError::BeyondChain,
        ChainError::Overpayment,
        ChainError::Unpaid,
        ChainError::BeyondGrant,
    ] {
        all.push(e.into());
    }
    let mut codes: Vec<u32> = all.iter().map(|r| r.code()).collect();
    for r in &all {
        assert!(r.code() > 100, "{r:?}");
        assert_eq!(Reason::from_code(r.code()), Some(*r), "{r:?}");
        assert!(!r.as_str().is_empty());
        assert!(r.errno() > 0);
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    assert_eq!(Reason::from_code(0), None);
    assert_eq!(Reason::from_code(4), None);
    assert_eq!(Reason::from_code(120), None);
    assert_eq!(Reason::from_code(999), None);
    // A fixed sample, as documented.
    assert_eq!(Reason::Replayed.code(), 112);
    assert_eq!(Reason::GuestTooLarge.code(), 128);
    assert_eq!(Reason::Payment(ChainError::Unpaid).code(), 135);
    assert_eq!(Reason::StreamAuth.code(), 141);
}

#[test]
fn token_reply_record() {
    let r = TokenReply {
        code: 0,
        detail: 0,
        salt: [3; 16],
    };
    let enc = r.encode();
    assert_eq!(TokenReply::decode(&enc), Ok(r));
    assert!(r.accepted());
    for cut in 0..enc.len() {
        assert_eq!(TokenReply::decode(&enc[..cut]), Err(WireError::Truncated));
    }
    let mut out = [0u8; 8];
    assert_eq!(
        encode_token_record(&[0; 10], &[0; 16], 0, &mut out),
        Err(WireError::BadField)
    );
    assert_eq!(
        encode_token_record(&[0; TOKEN_LEN], &[0; 16], 0, &mut out),
        Err(WireError::NoSpace)
    );
}
