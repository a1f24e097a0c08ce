// SPDX-License-Identifier: GPL-2.0

//! What the source sends: records framed with the next header counter and,
//! once the stream key is known, sealed, built with `proto`'s own encoders
//! and `Sealer` so that every record is exactly what a genuine source would
//! send, until a scenario chooses to misbehave with it.

use crate::crypto::{Gcm, Sha256};
use selfmig_proto::admission::encode_token_record;
use selfmig_proto::bundle::TokenBundle;
use selfmig_proto::chain::{chain_link, Payment, PAYMENT_LEN};
use selfmig_proto::crypto::{SessionAead, TAG_LEN};
use selfmig_proto::seal::{encode_sealed_header, stream_key, Direction, Sealer, SALT_LEN};
use selfmig_proto::token::TOKEN_LEN;
use selfmig_proto::wire::{
    encode_record, BatchWriter, Header, RecordKind, Sequence, HEADER_LEN, MAX_PAYLOAD, PAGE_SIZE,
};

/// The source's outgoing side of one connection.
pub struct Outbox {
    tx: Sequence,
    sealer: Sealer,
    aead: Option<Gcm>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// A new connection's: header counter 0, no stream key yet.
    pub fn new() -> Self {
        Self {
            tx: Sequence::new(),
            sealer: Sealer::new(Direction::SourceToTarget),
            aead: None,
        }
    }

    /// The stream's cipher, once the token was accepted.
    pub fn aead(&self) -> Option<&Gcm> {
        self.aead.as_ref()
    }

    /// The first record: the bundle's token and this connection's salt.
    pub fn token(&mut self, bundle: &TokenBundle, salt: &[u8; SALT_LEN]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + TOKEN_LEN + SALT_LEN];
        let n = encode_token_record(&bundle.token, salt, self.tx.take(), &mut out)
            .expect("a bundle's token has the token's length");
        out.truncate(n);
        out
    }

    /// Keys the stream once the loader sent its salt.
    pub fn start_stream(
        &mut self,
        bundle: &TokenBundle,
        source_salt: &[u8; SALT_LEN],
        target_salt: &[u8; SALT_LEN],
    ) {
        let key = stream_key(&Sha256, &bundle.session_key, source_salt, target_salt);
        self.aead = Gcm::with_key(&key).ok();
    }

    /// A plaintext record of `kind` with the next header counter.
    pub fn plain(&mut self, kind: RecordKind, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + payload.len()];
        let n = encode_record(kind, self.tx.take(), payload, &mut out)
            .expect("payloads built here are within their kind's bound");
        out.truncate(n);
        out
    }

    /// Seals a plaintext record (as [`Outbox::plain`] or [`Outbox::batch`]
    /// framed it) with the next sealing counter.
    pub fn seal(&mut self, mut record: Vec<u8>) -> Vec<u8> {
        let aead = self.aead.as_ref().expect("the stream is keyed");
        let len = record.len();
        record.resize(len + TAG_LEN, 0);
        let n = self
            .sealer
            .seal(aead, &mut record, len)
            .expect("a well-framed record seals");
        record.truncate(n);
        record
    }

    /// A sealed record of `kind` with `payload`.
    pub fn sealed(&mut self, kind: RecordKind, payload: &[u8]) -> Vec<u8> {
        let record = self.plain(kind, payload);
        self.seal(record)
    }

    /// A sealed payment revealing link `index` of the bundle's chain.
    pub fn payment(&mut self, bundle: &TokenBundle, index: u32) -> Vec<u8> {
        self.sealed(RecordKind::Payment, &payment(bundle, index))
    }

    /// A plaintext page batch of round 0: one data page (filled with its
    /// frame's low byte) per frame.
    pub fn batch(&mut self, frames: &[u64]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let mut w = BatchWriter::new(&mut buf, 0).expect("the buffer holds a batch");
        for &pfn in frames {
            w.push_data(pfn, &[pfn as u8; PAGE_SIZE])
                .expect("frames fit a batch");
        }
        let n = w.finish_len(self.tx.take()).expect("a batch has pages");
        buf.truncate(n);
        buf
    }

    /// A plaintext page batch (to be sealed) of one page of frame `pfn`
    /// sent as the LZ4 block `block`, whatever it decompresses to.
    pub fn compressed_batch(&mut self, pfn: u64, block: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let mut w = BatchWriter::new(&mut buf, 0).expect("the buffer holds a batch");
        let page = [0u8; PAGE_SIZE];
        w.push_compressed(pfn, &page, |_, out| {
            out[..block.len()].copy_from_slice(block);
            block.len()
        })
        .expect("one page fits a batch");
        let n = w.finish_len(self.tx.take()).expect("a batch has pages");
        buf.truncate(n);
        buf
    }

    /// A page batch record of one page for `pfn`: a patch (one word) of
    /// whatever the receiver holds for it.
    pub fn patch_batch(&mut self, pfn: u64) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let mut w = BatchWriter::new(&mut buf, 0).expect("the buffer holds a batch");
        let mut page = [0u8; PAGE_SIZE];
        page[8] = 1;
        w.push_patch(pfn, &[0u8; PAGE_SIZE], &page, 1)
            .expect("one page fits a batch");
        let n = w.finish_len(self.tx.take()).expect("a batch has pages");
        buf.truncate(n);
        buf
    }

    /// The header alone of a sealed record of `kind` stating a payload of
    /// `len` bytes, tag included; nothing is sealed.
    pub fn sealed_header(&mut self, kind: RecordKind, len: u32) -> Vec<u8> {
        let header = Header {
            kind,
            len,
            seq: self.tx.take(),
        };
        encode_sealed_header(&header).to_vec()
    }
}

/// The payload of a payment revealing link `index` of the bundle's chain
/// (a zero link if the chain is shorter: refused as a wrong link).
pub fn payment(bundle: &TokenBundle, index: u32) -> [u8; PAYMENT_LEN] {
    let link = chain_link(&Sha256, &bundle.seed, bundle.chain_len, index).unwrap_or([0; 32]);
    Payment { index, link }.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use selfmig_proto::seal::{decode_sealed_header, Opener};
    use selfmig_proto::wire::{PageBatch, WireError};

    fn bundle() -> TokenBundle {
        TokenBundle {
            token: [0; TOKEN_LEN],
            granted_pages: 1024,
            granted_vcpus: 1,
            unit_pages: 64,
            chain_len: 4,
            expiry: 0,
            session_key: [5; 32],
            seed: [6; 32],
        }
    }

    /// An outbox past the token (header counter 1), keyed.
    fn keyed() -> Outbox {
        let mut o = Outbox::new();
        assert_eq!(o.token(&bundle(), &[1; SALT_LEN]).len(), HEADER_LEN + 176);
        o.start_stream(&bundle(), &[1; SALT_LEN], &[2; SALT_LEN]);
        o
    }

    /// Opens `record` as the loader would, with `opener`.
    fn open(o: &Outbox, opener: &mut Opener, record: &[u8]) -> (Header, Vec<u8>) {
        let raw: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().unwrap();
        let mut payload = record[HEADER_LEN..].to_vec();
        let (h, plain) = opener.open(o.aead().unwrap(), &raw, &mut payload).unwrap();
        (h, plain.to_vec())
    }

    #[test]
    fn sealed_records_open_in_order() {
        let mut o = keyed();
        let mut opener = Opener::new(Direction::SourceToTarget);
        let pay = o.payment(&bundle(), 1);
        let batch = o.batch(&[3, 9]);
        let batch = o.seal(batch);
        let (h, plain) = open(&o, &mut opener, &pay);
        assert_eq!((h.kind, h.seq), (RecordKind::Payment, 1));
        let p = Payment::decode(&plain).unwrap();
        assert_eq!(p.index, 1);
        assert_eq!(Some(p.link), chain_link(&Sha256, &[6; 32], 4, 1));
        let (h, plain) = open(&o, &mut opener, &batch);
        assert_eq!((h.kind, h.seq), (RecordKind::PageBatch, 2));
        let pfns: Vec<u64> = PageBatch::decode(&plain)
            .unwrap()
            .pages()
            .map(|p| p.pfn)
            .collect();
        assert_eq!(pfns, [3, 9]);
    }

    #[test]
    fn sealed_out_of_order_fails_to_open() {
        let mut o = keyed();
        let first = o.plain(RecordKind::Payment, &payment(&bundle(), 1));
        let second = o.batch(&[1]);
        // Sealed in the other order than framed and sent.
        let second = o.seal(second);
        let first = o.seal(first);
        let raw: [u8; HEADER_LEN] = first[..HEADER_LEN].try_into().unwrap();
        let mut payload = first[HEADER_LEN..].to_vec();
        let mut opener = Opener::new(Direction::SourceToTarget);
        assert!(opener.open(o.aead().unwrap(), &raw, &mut payload).is_err());
        assert_eq!(second.len(), HEADER_LEN + 8 + 8 + PAGE_SIZE + TAG_LEN);
    }

    #[test]
    fn oversize_header_is_refused_by_the_header_check() {
        let mut o = keyed();
        let len = (MAX_PAYLOAD + TAG_LEN + 1) as u32;
        let raw: [u8; HEADER_LEN] = o
            .sealed_header(RecordKind::PageBatch, len)
            .try_into()
            .unwrap();
        match decode_sealed_header(&raw) {
            Err(selfmig_proto::seal::SealError::Header(WireError::Oversize { len: l, .. })) => {
                assert_eq!(l, len)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_records_count_on() {
        let mut o = Outbox::new();
        let a = o.plain(RecordKind::Payment, &[0; 40]);
        let b = o.plain(RecordKind::Payment, &[0; 40]);
        let seq = |r: &[u8]| u32::from_le_bytes(r[12..16].try_into().unwrap());
        assert_eq!((seq(&a), seq(&b)), (0, 1));
        assert_eq!(a.len(), HEADER_LEN + 40);
    }
}
