// SPDX-License-Identifier: GPL-2.0
//! Wire format: round trips, truncation, bounds and version checks.

use selfmig_proto::machine::{MachineDesc, Mismatch, RamRange};
use selfmig_proto::wire::*;

fn header_bytes(kind: u16, len: u32, seq: u32, version: u16) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..4].copy_from_slice(&MAGIC);
    b[4..6].copy_from_slice(&version.to_le_bytes());
    b[6..8].copy_from_slice(&kind.to_le_bytes());
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[12..16].copy_from_slice(&seq.to_le_bytes());
    b
}

#[test]
fn header_round_trip() {
    let h = Header {
        kind: RecordKind::Abort,
        len: 4,
        seq: 7,
    };
    let mut b = [0u8; HEADER_LEN];
    h.encode(&mut b);
    assert_eq!(Header::decode(&b), Ok(h));
}

#[test]
fn header_refuses_bad_magic_version_kind_and_length() {
    let mut b = header_bytes(1, 0, 0, VERSION);
    b[0] = b'X';
    assert_eq!(Header::decode(&b), Err(WireError::BadMagic));
    let b = header_bytes(1, 0, 0, VERSION + 1);
    assert_eq!(
        Header::decode(&b),
        Err(WireError::VersionMismatch { got: VERSION + 1 })
    );
    let b = header_bytes(99, 0, 0, VERSION);
    assert_eq!(Header::decode(&b), Err(WireError::UnknownKind(99)));
    let b = header_bytes(RecordKind::Complete as u16, 1, 0, VERSION);
    assert!(matches!(
        Header::decode(&b),
        Err(WireError::Oversize { .. })
    ));
    let b = header_bytes(
        RecordKind::PageBatch as u16,
        MAX_PAYLOAD as u32 + 1,
        0,
        VERSION,
    );
    assert!(matches!(
        Header::decode(&b),
        Err(WireError::Oversize { .. })
    ));
    let b = header_bytes(RecordKind::PageBatch as u16, u32::MAX, 0, VERSION);
    assert!(matches!(
        Header::decode(&b),
        Err(WireError::Oversize { .. })
    ));
}

#[test]
fn sequence_refuses_replay_and_gaps() {
    let mut tx = Sequence::new();
    let mut rx = Sequence::new();
    for _ in 0..3 {
        let h = Header {
            kind: RecordKind::Commit,
            len: 0,
            seq: tx.take(),
        };
        assert_eq!(rx.check(&h), Ok(()));
    }
    let replay = Header {
        kind: RecordKind::Commit,
        len: 0,
        seq: 2,
    };
    assert_eq!(
        rx.check(&replay),
        Err(WireError::OutOfOrder {
            expected: 3,
            got: 2
        })
    );
    let gap = Header {
        kind: RecordKind::Commit,
        len: 0,
        seq: 5,
    };
    assert_eq!(
        rx.check(&gap),
        Err(WireError::OutOfOrder {
            expected: 3,
            got: 5
        })
    );
}

fn page(fill: u8) -> [u8; PAGE_SIZE] {
    let mut p = [fill; PAGE_SIZE];
    p[0] = fill.wrapping_add(1);
    p
}

#[test]
fn batch_round_trip() {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 3).unwrap();
    assert_eq!(w.last_data(), None);
    w.push_data(0x1234, &page(7)).unwrap();
    assert_eq!(w.last_data(), Some(&page(7)));
    w.push_zero(0x1235).unwrap();
    assert_eq!(w.last_data(), Some(&page(7)));
    w.push_data((1 << 52) - 1, &page(9)).unwrap();
    let rec = w.finish(11).unwrap().to_vec();
    let h = Header::decode(rec[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!(h.kind, RecordKind::PageBatch);
    assert_eq!(h.seq, 11);
    assert_eq!(h.len as usize, rec.len() - HEADER_LEN);
    let b = PageBatch::decode(&rec[HEADER_LEN..]).unwrap();
    assert_eq!(b.round, 3);
    let pages: Vec<_> = b.pages().collect();
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].pfn, 0x1234);
    assert_eq!(pages[0].content, PageContent::Data(&page(7)));
    assert_eq!(
        pages[1],
        PageRef {
            pfn: 0x1235,
            content: PageContent::Zero
        }
    );
    assert_eq!(pages[2].pfn, (1 << 52) - 1);
}

#[test]
fn batch_full_and_limits() {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 0).unwrap();
    for i in 0..MAX_BATCH_PAGES as u64 {
        w.push_data(i, &page(i as u8)).unwrap();
    }
    assert!(w.is_full());
    assert_eq!(w.push_zero(99), Err(WireError::NoSpace));
    let rec = w.finish(0).unwrap();
    assert_eq!(rec.len(), HEADER_LEN + MAX_PAYLOAD);
    assert_eq!(
        PageBatch::decode(&rec[HEADER_LEN..]).unwrap().len(),
        MAX_BATCH_PAGES
    );

    let mut small = vec![0u8; 100];
    assert!(matches!(
        BatchWriter::new(&mut small, 0),
        Err(WireError::NoSpace)
    ));
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 0).unwrap();
    assert_eq!(w.push_zero(1 << 52), Err(WireError::PfnOutOfRange));
    assert_eq!(w.finish(0).err(), Some(WireError::BadBatchCount));
}

#[test]
fn batch_truncated_at_every_length_is_refused() {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 1).unwrap();
    w.push_data(5, &page(1)).unwrap();
    w.push_zero(6).unwrap();
    let payload = w.finish(0).unwrap()[HEADER_LEN..].to_vec();
    for cut in 0..payload.len() {
        let r = PageBatch::decode(&payload[..cut]);
        assert!(r.is_err(), "cut at {cut} accepted");
    }
    let mut longer = payload.clone();
    longer.push(0);
    assert_eq!(
        PageBatch::decode(&longer).err(),
        Some(WireError::TrailingBytes)
    );
}

#[test]
fn batch_refuses_bad_count_kind_and_pfn() {
    let mut p = vec![0u8; 8];
    assert_eq!(PageBatch::decode(&p).err(), Some(WireError::BadBatchCount));
    p[4..8].copy_from_slice(&(MAX_BATCH_PAGES as u32 + 1).to_le_bytes());
    assert_eq!(PageBatch::decode(&p).err(), Some(WireError::BadBatchCount));

    let mut p = vec![0u8; 16];
    p[4..8].copy_from_slice(&1u32.to_le_bytes());
    p[8..16].copy_from_slice(&(5u64 | (5 << 60)).to_le_bytes());
    assert_eq!(PageBatch::decode(&p).err(), Some(WireError::BadPageKind));
    p[8..16].copy_from_slice(&((1u64 << 52) | (1 << 60)).to_le_bytes());
    assert_eq!(PageBatch::decode(&p).err(), Some(WireError::PfnOutOfRange));
}

/// A stand-in compressor: "compresses" a page to its first `n` bytes.
fn first_bytes(n: usize) -> impl FnOnce(&[u8; PAGE_SIZE], &mut [u8]) -> usize {
    move |page, out| {
        if n > out.len() {
            return 0;
        }
        out[..n].copy_from_slice(&page[..n]);
        n
    }
}

#[test]
fn batch_compressed_pages_round_trip() {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 2).unwrap();
    assert_eq!(w.push_compressed(1, &page(3), first_bytes(5)), Ok(true));
    assert_eq!(w.last_data(), None);
    // Does not fit, or the compressor gave up: plain data.
    assert_eq!(
        w.push_compressed(2, &page(4), first_bytes(PAGE_SIZE)),
        Ok(false)
    );
    assert_eq!(w.last_data(), Some(&page(4)));
    assert_eq!(w.push_compressed(3, &page(5), first_bytes(0)), Ok(false));
    assert_eq!(
        w.push_compressed(4, &page(6), first_bytes(MAX_LZ4_LEN)),
        Ok(true)
    );
    w.push_zero(5).unwrap();
    let rec = w.finish(0).unwrap().to_vec();
    let b = PageBatch::decode(&rec[HEADER_LEN..]).unwrap();
    let pages: Vec<_> = b.pages().collect();
    assert_eq!(pages.len(), 5);
    assert_eq!(pages[0].content, PageContent::Lz4(&page(3)[..5]));
    assert_eq!(pages[1].content, PageContent::Data(&page(4)));
    assert_eq!(pages[2].content, PageContent::Data(&page(5)));
    assert_eq!(pages[3].content, PageContent::Lz4(&page(6)[..MAX_LZ4_LEN]));
    assert_eq!(pages[4].content, PageContent::Zero);
    assert_eq!(pages[3].pfn, 4);
}

/// A page of zeroes with `words` set at their indices.
fn sparse_page(words: &[(usize, u64)]) -> [u8; PAGE_SIZE] {
    let mut p = [0u8; PAGE_SIZE];
    for &(i, v) in words {
        p[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    p
}

/// A one-page batch holding a sparse entry with `count` and `pairs` as
/// given (possibly invalid).
fn raw_sparse_batch(count: u16, pairs: &[(u16, u64)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(9u64 | 3 << 60).to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    for &(i, v) in pairs {
        b.extend_from_slice(&i.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

#[test]
fn sparse_pages_round_trip() {
    let one = sparse_page(&[(17, 0xdead_beef)]);
    let edges = sparse_page(&[(0, 1), (511, u64::MAX)]);
    let full: Vec<(usize, u64)> = (0..MAX_SPARSE_WORDS)
        .map(|i| (i * 7, i as u64 + 1))
        .collect();
    let full = sparse_page(&full);
    let over: Vec<(usize, u64)> = (0..=MAX_SPARSE_WORDS).map(|i| (i, 5)).collect();
    let over = sparse_page(&over);
    assert_eq!(sparse_words(&[0u8; PAGE_SIZE]), 0);
    assert_eq!(sparse_words(&one), 1);
    assert_eq!(sparse_words(&full), MAX_SPARSE_WORDS);
    assert_eq!(sparse_words(&over), MAX_SPARSE_WORDS + 1);

    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 3).unwrap();
    assert_eq!(w.push_sparse(1, &one), Ok(true));
    assert_eq!(w.push_sparse(2, &edges), Ok(true));
    assert_eq!(w.push_sparse(3, &full), Ok(true));
    // Not sparse: nothing is written.
    assert_eq!(w.push_sparse(4, &over), Ok(false));
    assert_eq!(w.push_sparse(5, &[0u8; PAGE_SIZE]), Ok(false));
    assert_eq!(w.count(), 3);
    let rec = w.finish(0).unwrap().to_vec();
    let b = PageBatch::decode(&rec[HEADER_LEN..]).unwrap();
    let pages: Vec<_> = b.pages().collect();
    assert_eq!(pages.len(), 3);
    for (p, want) in pages.iter().zip([&one, &edges, &full]) {
        let PageContent::Sparse(pairs) = p.content else {
            panic!("not sparse: {:?}", p.content);
        };
        let mut out = [0xffu8; PAGE_SIZE];
        fill_sparse(pairs, &mut out);
        assert_eq!(&out, want);
    }
    assert_eq!(pages[2].pfn, 3);
}

/// A one-page batch holding a patch entry with `count` and `pairs` as
/// given (possibly invalid).
fn raw_patch_batch(count: u16, pairs: &[(u16, u64)]) -> Vec<u8> {
    let mut b = raw_sparse_batch(count, pairs);
    b[8..16].copy_from_slice(&(9u64 | 4 << 60).to_le_bytes());
    b
}

#[test]
fn patches_round_trip() {
    let old = sparse_page(&[(3, 7), (100, 8), (511, 9)]);
    // Three words changed, one of them to zero.
    let new = sparse_page(&[(0, 1), (3, 7), (100, 0), (511, 10)]);
    assert_eq!(patch_words(&old, &old), 0);
    assert_eq!(patch_words(&old, &new), 3);
    let many: Vec<(usize, u64)> = (0..=MAX_PATCH_WORDS).map(|i| (i * 3, 1)).collect();
    let many = sparse_page(&many);
    assert_eq!(patch_words(&[0u8; PAGE_SIZE], &many), MAX_PATCH_WORDS + 1);
    let most: Vec<(usize, u64)> = (0..MAX_PATCH_WORDS).map(|i| (i * 3, 2)).collect();
    let most = sparse_page(&most);

    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 2).unwrap();
    assert_eq!(w.push_patch(5, &old, &new, MAX_PATCH_WORDS), Ok(true));
    assert_eq!(
        w.push_patch(6, &[0u8; PAGE_SIZE], &most, MAX_PATCH_WORDS),
        Ok(true)
    );
    // Nothing changed, too much, or more than the caller's limit: nothing
    // is written.
    assert_eq!(w.push_patch(9, &old, &new, 2), Ok(false));
    assert_eq!(w.push_patch(7, &old, &old, MAX_PATCH_WORDS), Ok(false));
    assert_eq!(
        w.push_patch(8, &[0u8; PAGE_SIZE], &many, MAX_PATCH_WORDS),
        Ok(false)
    );
    assert_eq!(w.count(), 2);
    let rec = w.finish(0).unwrap().to_vec();
    let b = PageBatch::decode(&rec[HEADER_LEN..]).unwrap();
    let pages: Vec<_> = b.pages().collect();
    assert_eq!(pages.len(), 2);
    for (p, (from, want)) in pages.iter().zip([(&old, &new), (&[0u8; PAGE_SIZE], &most)]) {
        let PageContent::Patch(pairs) = p.content else {
            panic!("not a patch: {:?}", p.content);
        };
        let mut out = *from;
        apply_patch(pairs, &mut out);
        assert_eq!(&out, want);
    }
    assert_eq!(pages[0].pfn, 5);
}

#[test]
fn patches_are_validated() {
    assert!(PageBatch::decode(&raw_patch_batch(1, &[(3, 0)])).is_ok());
    assert!(PageBatch::decode(&raw_patch_batch(2, &[(0, 1), (511, 0)])).is_ok());
    let bad: [SparseCase; 6] = [
        (0, &[], WireError::BadField),
        (MAX_PATCH_WORDS as u16 + 1, &[], WireError::BadField),
        (1, &[(512, 1)], WireError::BadField),
        (2, &[(3, 1), (3, 2)], WireError::BadField),
        (2, &[(4, 1), (3, 2)], WireError::BadField),
        (2, &[(3, 1)], WireError::Truncated),
    ];
    for (count, pairs, err) in bad {
        assert_eq!(
            PageBatch::decode(&raw_patch_batch(count, pairs)).err(),
            Some(err),
            "count {count} pairs {pairs:?}"
        );
    }
    let payload = raw_patch_batch(2, &[(3, 1), (9, 0)]);
    for cut in 0..payload.len() {
        assert!(
            PageBatch::decode(&payload[..cut]).is_err(),
            "cut at {cut} accepted"
        );
    }
    // A full batch of the largest patches stays within the bound.
    let most: Vec<(usize, u64)> = (0..MAX_PATCH_WORDS).map(|i| (i, 9)).collect();
    let most = sparse_page(&most);
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 0).unwrap();
    for i in 0..MAX_BATCH_PAGES as u64 {
        assert_eq!(
            w.push_patch(i, &[0u8; PAGE_SIZE], &most, MAX_PATCH_WORDS),
            Ok(true)
        );
    }
    assert_eq!(
        w.push_patch(99, &[0u8; PAGE_SIZE], &most, MAX_PATCH_WORDS),
        Err(WireError::NoSpace)
    );
    assert!(w.finish(0).unwrap().len() <= HEADER_LEN + MAX_PAYLOAD);
}

/// A sparse entry's count, its pairs, and the error they must give.
type SparseCase = (u16, &'static [(u16, u64)], WireError);

#[test]
fn sparse_pages_are_validated() {
    assert!(PageBatch::decode(&raw_sparse_batch(1, &[(3, 1)])).is_ok());
    assert!(PageBatch::decode(&raw_sparse_batch(2, &[(3, 1), (511, 2)])).is_ok());
    let bad: [SparseCase; 7] = [
        (0, &[], WireError::BadField),
        (MAX_SPARSE_WORDS as u16 + 1, &[], WireError::BadField),
        (1, &[(512, 1)], WireError::BadField),
        (1, &[(3, 0)], WireError::BadField),
        (2, &[(3, 1), (3, 2)], WireError::BadField),
        (2, &[(4, 1), (3, 2)], WireError::BadField),
        (2, &[(3, 1)], WireError::Truncated),
    ];
    for (count, pairs, err) in bad {
        assert_eq!(
            PageBatch::decode(&raw_sparse_batch(count, pairs)).err(),
            Some(err),
            "count {count} pairs {pairs:?}"
        );
    }
    // Cut anywhere: refused.
    let payload = raw_sparse_batch(2, &[(3, 1), (9, 2)]);
    for cut in 0..payload.len() {
        assert!(
            PageBatch::decode(&payload[..cut]).is_err(),
            "cut at {cut} accepted"
        );
    }
    // A full batch of the largest sparse pages stays within the bound.
    let full: Vec<(usize, u64)> = (0..MAX_SPARSE_WORDS).map(|i| (i, 9)).collect();
    let full = sparse_page(&full);
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 0).unwrap();
    for i in 0..MAX_BATCH_PAGES as u64 {
        assert_eq!(w.push_sparse(i, &full), Ok(true));
    }
    assert_eq!(w.push_sparse(99, &full), Err(WireError::NoSpace));
    assert!(w.finish(0).unwrap().len() <= HEADER_LEN + MAX_PAYLOAD);
}

#[test]
fn batch_of_compressed_pages_fits_and_truncation_is_refused() {
    // A full batch of pages that barely compress stays within the bound.
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 0).unwrap();
    for i in 0..MAX_BATCH_PAGES as u64 {
        assert_eq!(
            w.push_compressed(i, &page(i as u8), first_bytes(MAX_LZ4_LEN)),
            Ok(true)
        );
    }
    assert_eq!(
        w.push_compressed(99, &page(0), first_bytes(1)),
        Err(WireError::NoSpace)
    );
    let rec = w.finish(0).unwrap();
    assert!(rec.len() <= HEADER_LEN + MAX_PAYLOAD);
    assert_eq!(
        PageBatch::decode(&rec[HEADER_LEN..]).unwrap().len(),
        MAX_BATCH_PAGES
    );

    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut w = BatchWriter::new(&mut buf, 1).unwrap();
    w.push_compressed(7, &page(1), first_bytes(40)).unwrap();
    w.push_zero(8).unwrap();
    let payload = w.finish(0).unwrap()[HEADER_LEN..].to_vec();
    for cut in 0..payload.len() {
        assert!(
            PageBatch::decode(&payload[..cut]).is_err(),
            "cut at {cut} accepted"
        );
    }
}

#[test]
fn batch_refuses_bad_compressed_lengths() {
    let entry = |len: u16, body: usize| {
        let mut p = vec![0u8; 8];
        p[4..8].copy_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&(9u64 | (2 << 60)).to_le_bytes());
        p.extend_from_slice(&len.to_le_bytes());
        p.resize(p.len() + body, 0xab);
        p
    };
    assert!(PageBatch::decode(&entry(3, 3)).is_ok());
    assert_eq!(
        PageBatch::decode(&entry(0, 0)).err(),
        Some(WireError::BadField)
    );
    assert_eq!(
        PageBatch::decode(&entry(MAX_LZ4_LEN as u16 + 1, MAX_LZ4_LEN + 1)).err(),
        Some(WireError::BadField)
    );
    assert_eq!(
        PageBatch::decode(&entry(u16::MAX, 10)).err(),
        Some(WireError::BadField)
    );
    assert_eq!(
        PageBatch::decode(&entry(10, 9)).err(),
        Some(WireError::Truncated)
    );
    assert_eq!(
        PageBatch::decode(&entry(10, 11)).err(),
        Some(WireError::TrailingBytes)
    );
}

#[test]
fn small_records() {
    let mut out = [0u8; 64];
    let n = encode_record(RecordKind::Abort, 4, &9u32.to_le_bytes(), &mut out).unwrap();
    let h = Header::decode(out[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!((h.kind, h.len, h.seq), (RecordKind::Abort, 4, 4));
    assert_eq!(decode_abort(&out[HEADER_LEN..n]), Ok(9));
    assert_eq!(decode_abort(&[1, 2]), Err(WireError::Truncated));
    assert_eq!(
        decode_abort(&[1, 2, 3, 4, 5]),
        Err(WireError::TrailingBytes)
    );
    assert!(matches!(
        encode_record(RecordKind::Complete, 0, &[1], &mut out),
        Err(WireError::Oversize { .. })
    ));
    assert_eq!(
        encode_record(RecordKind::Abort, 0, &[0; 4], &mut out[..10]),
        Err(WireError::NoSpace)
    );

    let reply = HelloReply {
        status: Refusal::MachineMismatch,
        detail: Mismatch::Vcpus as u32,
    };
    assert_eq!(HelloReply::decode(&reply.encode()), Ok(reply));
    assert_eq!(HelloReply::decode(&[0; 7]), Err(WireError::Truncated));
    assert_eq!(HelloReply::decode(&[0; 9]), Err(WireError::TrailingBytes));
    assert_eq!(Refusal::from_u32(1234), Refusal::Malformed);
}

fn desc() -> MachineDesc {
    let mut d = MachineDesc::new(2, 5, [0x1, 0x2, 0x4, 0x8]);
    d.push_range(RamRange {
        start_pfn: 1,
        nr_pages: 158,
    })
    .unwrap();
    d.push_range(RamRange {
        start_pfn: 256,
        nr_pages: 130_000,
    })
    .unwrap();
    d
}

#[test]
fn machine_round_trip_and_lookup() {
    let d = desc();
    let enc = d.encode();
    assert_eq!(enc.len(), RecordKind::Hello.max_payload());
    let back = MachineDesc::decode(&enc).unwrap();
    assert_eq!(back, d);
    assert_eq!(back.total_pages(), 158 + 130_000);
    assert!(back.contains_pfn(1) && back.contains_pfn(158) && !back.contains_pfn(159));
    assert!(back.contains_pfn(256) && !back.contains_pfn(256 + 130_000));
    assert!(!back.contains_pfn(0));
}

#[test]
fn machine_ranges_merge_and_refuse_overlap() {
    let mut d = MachineDesc::new(1, 4, [0; 4]);
    d.push_range(RamRange {
        start_pfn: 0,
        nr_pages: 10,
    })
    .unwrap();
    d.push_range(RamRange {
        start_pfn: 10,
        nr_pages: 10,
    })
    .unwrap();
    assert_eq!(
        d.ranges(),
        &[RamRange {
            start_pfn: 0,
            nr_pages: 20
        }]
    );
    assert_eq!(
        d.push_range(RamRange {
            start_pfn: 5,
            nr_pages: 1
        }),
        Err(WireError::BadField)
    );
    assert_eq!(
        d.push_range(RamRange {
            start_pfn: 50,
            nr_pages: 0
        }),
        Err(WireError::BadField)
    );
    assert_eq!(
        d.push_range(RamRange {
            start_pfn: u64::MAX,
            nr_pages: 2
        }),
        Err(WireError::BadField)
    );
    for i in 1..16u64 {
        d.push_range(RamRange {
            start_pfn: 100 * i,
            nr_pages: 1,
        })
        .unwrap();
    }
    assert_eq!(
        d.push_range(RamRange {
            start_pfn: 5000,
            nr_pages: 1
        }),
        Err(WireError::NoSpace)
    );
}

#[test]
fn machine_decode_refuses_malformed() {
    let enc = desc().encode();
    for cut in [0, 1, enc.len() - 1] {
        assert_eq!(MachineDesc::decode(&enc[..cut]), Err(WireError::Truncated));
    }
    let mut long = enc.to_vec();
    long.push(0);
    assert_eq!(MachineDesc::decode(&long), Err(WireError::TrailingBytes));
    let patch = |word: usize, v: u32| {
        let mut e = enc;
        e[4 * word..4 * word + 4].copy_from_slice(&v.to_le_bytes());
        MachineDesc::decode(&e)
    };
    assert_eq!(patch(1, 8192), Err(WireError::BadField)); // page size
    assert_eq!(patch(2, 0), Err(WireError::BadField)); // vcpus
    assert_eq!(patch(3, 3), Err(WireError::BadField)); // paging levels
    assert_eq!(patch(4, 0), Err(WireError::BadField)); // no ranges
    assert_eq!(patch(4, 17), Err(WireError::BadField)); // too many
    assert_eq!(patch(4, 1).err(), Some(WireError::BadField)); // junk in unused slot
}

#[test]
fn machine_compatibility() {
    let s = desc();
    assert_eq!(s.check_compatible(&s), Ok(()));
    let mut t = desc();
    t.cpu_features = [0xff; 4];
    assert_eq!(
        s.check_compatible(&t),
        Ok(()),
        "a superset of features is fine"
    );
    assert_eq!(t.check_compatible(&s), Err(Mismatch::CpuFeatures));
    let t = MachineDesc::new(4, 5, [0x1, 0x2, 0x4, 0x8]);
    assert_eq!(s.check_compatible(&t), Err(Mismatch::Vcpus));
    let t = MachineDesc::new(2, 4, [0x1, 0x2, 0x4, 0x8]);
    assert_eq!(s.check_compatible(&t), Err(Mismatch::PagingLevels));
    let mut t = MachineDesc::new(2, 5, [0x1, 0x2, 0x4, 0x8]);
    t.push_range(RamRange {
        start_pfn: 1,
        nr_pages: 158,
    })
    .unwrap();
    assert_eq!(s.check_compatible(&t), Err(Mismatch::RamMap));
    let mut t = desc();
    t.image_version += 1;
    assert_eq!(s.check_compatible(&t), Err(Mismatch::ImageVersion));
    for m in 1..=6 {
        assert_eq!(Mismatch::from_u32(m).unwrap() as u32, m);
    }
    assert_eq!(Mismatch::from_u32(7), None);
}

#[test]
fn resume_info() {
    let r = ResumeInfo {
        cr3: 0x1234_5000,
        resume_va: 0xffff_ffff_c000_1000,
        resume_pfn: 77,
        staged_pages: 9,
        verify_pages: 4242,
        handoff_pfn: 0x4321,
    };
    let enc = r.encode();
    assert_eq!(enc.len(), ResumeInfo::ENCODED_LEN);
    assert!(ResumeInfo::ENCODED_LEN <= RecordKind::CpuContext.max_payload());
    assert_eq!(ResumeInfo::decode(&enc), Ok(r));
    assert_eq!(ResumeInfo::decode(&enc[..47]), Err(WireError::Truncated));
    let mut long = enc.to_vec();
    long.push(0);
    assert_eq!(ResumeInfo::decode(&long), Err(WireError::TrailingBytes));
}

#[test]
fn verify_hashes_round_trip_and_bounds() {
    let hashes: Vec<u64> = (0..MAX_VERIFY_HASHES as u64).map(|i| i * 31).collect();
    let mut buf = vec![0u8; RecordKind::VerifyHashes.max_payload()];
    let len = VerifyHashes::encode(1000, &hashes, &mut buf).unwrap();
    assert_eq!(len, RecordKind::VerifyHashes.max_payload());
    let v = VerifyHashes::decode(&buf[..len]).unwrap();
    assert_eq!(v.first_pfn, 1000);
    assert_eq!(v.len(), MAX_VERIFY_HASHES);
    assert!(v
        .iter()
        .enumerate()
        .all(|(i, (pfn, h))| pfn == 1000 + i as u64 && h == i as u64 * 31));

    // Too many, none, or no room.
    let too_many = vec![1u64; MAX_VERIFY_HASHES + 1];
    assert_eq!(
        VerifyHashes::encode(0, &too_many, &mut buf),
        Err(WireError::BadField)
    );
    assert_eq!(
        VerifyHashes::encode(0, &[], &mut buf),
        Err(WireError::BadField)
    );
    assert_eq!(
        VerifyHashes::encode(0, &[1, 2], &mut [0u8; 31]),
        Err(WireError::NoSpace)
    );

    // Every truncation is refused.
    let len = VerifyHashes::encode(5, &[7, 8, 9], &mut buf).unwrap();
    for cut in 0..len {
        assert!(VerifyHashes::decode(&buf[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = buf[..len].to_vec();
    long.push(0);
    assert_eq!(VerifyHashes::decode(&long), Err(WireError::TrailingBytes));

    // A count of zero, a count above the bound, a nonzero pad word, frames
    // past the limit.
    let mut bad = buf[..len].to_vec();
    bad[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(VerifyHashes::decode(&bad), Err(WireError::BadField));
    bad[8..12].copy_from_slice(&(MAX_VERIFY_HASHES as u32 + 1).to_le_bytes());
    assert_eq!(VerifyHashes::decode(&bad), Err(WireError::BadField));
    let mut bad = buf[..len].to_vec();
    bad[12] = 1;
    assert_eq!(VerifyHashes::decode(&bad), Err(WireError::BadField));
    let mut bad = buf[..len].to_vec();
    bad[0..8].copy_from_slice(&(PFN_LIMIT - 2).to_le_bytes());
    assert_eq!(VerifyHashes::decode(&bad), Err(WireError::PfnOutOfRange));
    bad[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(VerifyHashes::decode(&bad), Err(WireError::PfnOutOfRange));

    // The header bound admits the largest record and nothing longer.
    let h = header_bytes(
        8,
        RecordKind::VerifyHashes.max_payload() as u32 + 1,
        0,
        VERSION,
    );
    assert!(matches!(
        Header::decode(&h),
        Err(WireError::Oversize { .. })
    ));
}

#[test]
fn commit_info_round_trip_and_order() {
    let c = CommitInfo {
        stopped_ns: 5,
        sent_ns: 7,
        complete_ns: 7,
        commit_ns: 100,
    };
    let enc = c.encode();
    assert_eq!(enc.len(), RecordKind::Commit.max_payload());
    assert_eq!(CommitInfo::decode(&enc), Ok(c));
    assert_eq!(CommitInfo::decode(&enc[..31]), Err(WireError::Truncated));
    let bad = CommitInfo { sent_ns: 4, ..c };
    assert_eq!(CommitInfo::decode(&bad.encode()), Err(WireError::BadField));
}

#[test]
fn handoff_round_trip_and_refusals() {
    use selfmig_proto::handoff::{tsc_delta_us, Handoff};
    let h = Handoff {
        commit: CommitInfo {
            stopped_ns: 1,
            sent_ns: 2,
            complete_ns: 3,
            commit_ns: 4,
        },
        tsc_commit: 1_000,
        tsc_jump: 3_000_000,
        tsc_khz: 2_000_000,
        pages_received: 42,
        bytes_received: 4242,
        pages_verified: 40,
        staged_pages: 7,
        tsc_trampoline: 3_000_100,
        tsc_copied: 3_100_000,
        pages_in_place: 3,
        pages_unwritten: 11,
        unwritten_misses: 1,
        image_frames: 60,
        frames_in_place: 30,
        moved_home: 5,
        slotted: 25,
        identical_on_arrival: 12,
        tsc_context: 900,
        tsc_complete: 950,
    };
    let mut page = vec![0u8; PAGE_SIZE];
    page[..Handoff::ENCODED_LEN].copy_from_slice(&h.encode());
    assert_eq!(Handoff::decode(&page), Ok(h));
    // A page nobody wrote, another version, a zero frequency.
    assert_eq!(Handoff::decode(&[0u8; PAGE_SIZE]), Err(WireError::BadMagic));
    let mut other = page.clone();
    other[4] = 9;
    assert!(matches!(
        Handoff::decode(&other),
        Err(WireError::VersionMismatch { .. })
    ));
    let zero_khz = Handoff { tsc_khz: 0, ..h };
    assert_eq!(
        Handoff::decode(&zero_khz.encode()),
        Err(WireError::BadField)
    );
    assert_eq!(
        Handoff::decode(&page[..Handoff::ENCODED_LEN - 1]),
        Err(WireError::Truncated)
    );
    // The trampoline's stamps sit where the layout says.
    assert_eq!(
        page[selfmig_proto::handoff::STAMP_OFFSET..][..8],
        3_000_100u64.to_le_bytes()
    );
    // 2 GHz: 2,000,000 ticks are 1,000 us.
    assert_eq!(tsc_delta_us(1_000, 2_001_000, 2_000_000), 1_000);
    assert_eq!(tsc_delta_us(5, 1, 2_000_000), 0);
    assert_eq!(tsc_delta_us(0, 100, 0), 0);
}

/// A small deterministic generator (xorshift64*) for the tests below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The words in which `new` differs from `old`, one word at a time: what
/// the block-wise scans must find.
fn reference_changes(old: &[u8; PAGE_SIZE], new: &[u8; PAGE_SIZE]) -> Vec<(u16, [u8; 8])> {
    old.chunks_exact(8)
        .zip(new.chunks_exact(8))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (_, b))| (i as u16, b.try_into().unwrap()))
        .collect()
}

/// Pushes one page into a fresh batch with `push` and, if it was taken,
/// returns the record (decode it with [`only_page`]).
fn one_page_record(
    buf: &mut [u8],
    push: impl FnOnce(&mut BatchWriter<'_>) -> Result<bool, WireError>,
) -> Option<Vec<u8>> {
    let mut w = BatchWriter::new(buf, 1).unwrap();
    match push(&mut w).unwrap() {
        true => Some(w.finish(0).unwrap().to_vec()),
        false => None,
    }
}

/// The content of the only page of the batch record `rec`.
fn only_page(rec: &[u8]) -> PageContent<'_> {
    let b = PageBatch::decode(&rec[HEADER_LEN..]).unwrap();
    let page = b.pages().next().unwrap();
    page.content
}

#[test]
fn block_scans_find_every_changed_word() {
    let mut rng = Rng(0x05e1_f419);
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    for round in 0..400 {
        // Changes clustered in one block, spread out, at block edges, in
        // the first and last word, in a single byte of a word.
        let mut old = [0u8; PAGE_SIZE];
        for b in old.iter_mut() {
            *b = rng.next() as u8;
        }
        let mut new = old;
        let changes = (rng.next() % 140) as usize;
        for _ in 0..changes {
            let word = match round % 4 {
                0 => (rng.next() % 512) as usize,
                1 => ((rng.next() % 64) * 8 + [0, 7][(rng.next() % 2) as usize]) as usize,
                2 => (rng.next() % 16) as usize + 200,
                _ => [0, 511][(rng.next() % 2) as usize],
            };
            new[word * 8 + (rng.next() % 8) as usize] ^= 1 + (rng.next() % 255) as u8;
        }
        let want = reference_changes(&old, &new);
        assert_eq!(patch_words(&old, &new), want.len().min(MAX_PATCH_WORDS + 1));
        let zero = [0u8; PAGE_SIZE];
        let nonzero = reference_changes(&zero, &new);
        assert_eq!(sparse_words(&new), nonzero.len().min(MAX_SPARSE_WORDS + 1));

        let rec = one_page_record(&mut buf, |w| w.push_patch(1, &old, &new, MAX_PATCH_WORDS));
        assert_eq!(rec.is_some(), (1..=MAX_PATCH_WORDS).contains(&want.len()));
        let Some(rec) = rec else {
            continue;
        };
        let PageContent::Patch(pairs) = only_page(&rec) else {
            panic!("not a patch");
        };
        let got: Vec<(u16, [u8; 8])> = pairs
            .chunks_exact(10)
            .map(|p| (u16::from_le_bytes([p[0], p[1]]), p[2..].try_into().unwrap()))
            .collect();
        assert_eq!(got, want);
        let mut applied = old;
        apply_patch(pairs, &mut applied);
        assert_eq!(applied, new);
    }
}

#[test]
fn sparse_pages_hold_every_nonzero_word() {
    let mut rng = Rng(0xb10c);
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    for _ in 0..300 {
        let mut page = [0u8; PAGE_SIZE];
        for _ in 0..(rng.next() % 70) {
            page[(rng.next() % PAGE_SIZE as u64) as usize] = 1 + (rng.next() % 255) as u8;
        }
        let want = reference_changes(&[0u8; PAGE_SIZE], &page);
        let rec = one_page_record(&mut buf, |w| w.push_sparse(1, &page));
        assert_eq!(rec.is_some(), (1..=MAX_SPARSE_WORDS).contains(&want.len()));
        let Some(rec) = rec else {
            continue;
        };
        let PageContent::Sparse(pairs) = only_page(&rec) else {
            panic!("not a sparse page");
        };
        let mut out = [0xffu8; PAGE_SIZE];
        fill_sparse(pairs, &mut out);
        assert_eq!(out, page);
        assert_eq!(pairs.len(), want.len() * 10);
    }
}
