// SPDX-License-Identifier: GPL-2.0
//! Test support shared by the host tests and the fuzz target: crypto
//! backends from crates (the kernel uses its crypto API instead), a test
//! machine, token minting, a simulated source, and a loader loop that feeds
//! a byte stream to [`Admission`] exactly as the kernel's receiver does.

#![allow(dead_code)]

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use selfmig_proto::admission::{
    encode_token_record, Admission, Event, Grant, Phase, Reason, Reply, TokenReply,
};
use selfmig_proto::chain::{chain_anchor, chain_link, Link, Payment};
use selfmig_proto::crypto::{Aead, CryptoError, Hash256, SessionAead, KEY_LEN, NONCE_LEN, TAG_LEN};
use selfmig_proto::machine::{MachineDesc, RamRange};
use selfmig_proto::replay::{ReplayEntry, ReplaySet};
use selfmig_proto::seal::{stream_key, Direction, Opener, Sealer, SALT_LEN};
use selfmig_proto::token::{key_id, Token, TOKEN_LEN};
use selfmig_proto::wire::{
    encode_record, BatchWriter, Header, RecordKind, ResumeInfo, Sequence, HEADER_LEN, MAX_PAYLOAD,
    PAGE_SIZE,
};

/// AES-GCM from the `aes-gcm` crate, 128- or 256-bit.
pub enum Gcm {
    /// AES-128-GCM.
    A128(Box<Aes128Gcm>),
    /// AES-256-GCM.
    A256(Box<Aes256Gcm>),
}

impl Gcm {
    /// An instance for a 16- or 32-byte key.
    pub fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Some(Gcm::A128(Box::new(Aes128Gcm::new_from_slice(key).ok()?))),
            32 => Some(Gcm::A256(Box::new(Aes256Gcm::new_from_slice(key).ok()?))),
            _ => None,
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
pub struct Sha256;

impl Hash256 for Sha256 {
    fn hash(&self, data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }
}

/// The provider key of the tests.
pub const PROVIDER_KEY: [u8; 32] = [0x42; 32];

/// The tests' notion of "now" (unix seconds).
pub const NOW: u64 = 1_800_000_000;

/// The provider AEAD.
pub fn provider() -> Gcm {
    Gcm::new(&PROVIDER_KEY).unwrap()
}

/// The provider key's id.
pub fn provider_key_id() -> u16 {
    key_id(&Sha256, &PROVIDER_KEY).unwrap()
}

/// The test machine: 768 RAM pages in two ranges, frames 0..1536.
pub fn local_desc() -> MachineDesc {
    let mut d = MachineDesc::new(2, 4, [1, 2, 3, 4]);
    d.push_range(RamRange {
        start_pfn: 0,
        nr_pages: 256,
    })
    .unwrap();
    d.push_range(RamRange {
        start_pfn: 1024,
        nr_pages: 512,
    })
    .unwrap();
    d
}

/// Every RAM frame of [`local_desc`], in order.
pub fn local_frames() -> Vec<u64> {
    (0..256).chain(1024..1536).collect()
}

/// The payment seed of the tests.
pub const SEED: Link = [7; 32];

/// A token granting the test machine exactly, in units of 64 pages.
pub fn sample_token() -> Token {
    let chain_len = 12;
    Token {
        key_id: provider_key_id(),
        id: [9; 16],
        expiry: NOW + 3600,
        granted_pages: 768,
        granted_vcpus: 2,
        unit_pages: 64,
        price_per_unit: 5,
        anchor: chain_anchor(&Sha256, &SEED, chain_len),
        chain_len,
        session_key: [0x5e; 32],
    }
}

/// Seals `token` under the provider key with nonce `nonce`.
pub fn mint(token: &Token, nonce: [u8; 12]) -> Vec<u8> {
    let mut out = vec![0u8; TOKEN_LEN];
    let n = token.seal(&provider(), &nonce, &mut out).unwrap();
    assert_eq!(n, TOKEN_LEN);
    out
}

/// A simulated source: builds and seals records, pays, opens replies.
pub struct Source {
    pub session_key: [u8; 32],
    pub salt: [u8; SALT_LEN],
    pub seed: Link,
    pub chain_len: u32,
    pub aead: Option<Gcm>,
    pub sealer: Sealer,
    pub opener: Opener,
    pub tx: Sequence,
    pub rx: Sequence,
}

impl Source {
    /// A source holding `token`'s secrets.
    pub fn new(token: &Token) -> Self {
        Self {
            session_key: token.session_key,
            salt: [0x11; SALT_LEN],
            seed: SEED,
            chain_len: token.chain_len,
            aead: None,
            sealer: Sealer::new(Direction::SourceToTarget),
            opener: Opener::new(Direction::TargetToSource),
            tx: Sequence::new(),
            rx: Sequence::new(),
        }
    }

    /// The first record: `token` and this source's salt.
    pub fn token_record(&mut self, token: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + TOKEN_LEN + SALT_LEN];
        let n = encode_token_record(token, &self.salt, self.tx.take(), &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Reads the plaintext token reply; on acceptance derives the stream
    /// key.
    pub fn token_reply(&mut self, reply: &[u8]) -> TokenReply {
        let raw: [u8; HEADER_LEN] = reply[..HEADER_LEN].try_into().unwrap();
        let h = Header::decode(&raw).unwrap();
        assert_eq!(h.kind, RecordKind::TokenReply);
        self.rx.check(&h).unwrap();
        let r = TokenReply::decode(&reply[HEADER_LEN..]).unwrap();
        if r.accepted() {
            let key = stream_key(&Sha256, &self.session_key, &self.salt, &r.salt);
            self.aead = Some(Gcm::with_key(&key).unwrap());
        }
        r
    }

    /// A sealed record of `kind` with `payload`.
    pub fn sealed(&mut self, kind: RecordKind, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + payload.len() + TAG_LEN];
        let n = encode_record(kind, self.tx.take(), payload, &mut out).unwrap();
        let n = self
            .sealer
            .seal(self.aead.as_ref().unwrap(), &mut out, n)
            .unwrap();
        out.truncate(n);
        out
    }

    /// Opens a sealed reply from the target.
    pub fn open(&mut self, record: &[u8]) -> (Header, Vec<u8>) {
        let raw: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().unwrap();
        let mut payload = record[HEADER_LEN..].to_vec();
        let (h, plain) = self
            .opener
            .open(self.aead.as_ref().unwrap(), &raw, &mut payload)
            .unwrap();
        let plain = plain.to_vec();
        self.rx.check(&h).unwrap();
        (h, plain)
    }

    /// A sealed hello describing `desc`.
    pub fn hello(&mut self, desc: &MachineDesc) -> Vec<u8> {
        self.sealed(RecordKind::Hello, &desc.encode())
    }

    /// The link `w_index` of this source's chain.
    pub fn link(&self, index: u32) -> Link {
        chain_link(&Sha256, &self.seed, self.chain_len, index).unwrap_or([0; 32])
    }

    /// A sealed payment revealing `w_index`.
    pub fn payment(&mut self, index: u32) -> Vec<u8> {
        let link = self.link(index);
        self.sealed(RecordKind::Payment, &Payment { index, link }.encode())
    }

    /// A sealed page batch for `pfns`: odd frames zero pages, frames 2 mod 4
    /// sparse pages, the others data pages.
    pub fn batch(&mut self, pfns: &[u64]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + TAG_LEN];
        let mut w = BatchWriter::new(&mut buf, 0).unwrap();
        for &pfn in pfns {
            if pfn % 2 == 1 {
                w.push_zero(pfn).unwrap();
            } else if pfn % 4 == 2 {
                let mut page = [0u8; PAGE_SIZE];
                page[8..16].copy_from_slice(&(pfn | 1 << 63).to_le_bytes());
                assert!(w.push_sparse(pfn, &page).unwrap());
            } else {
                w.push_data(pfn, &[pfn as u8; PAGE_SIZE]).unwrap();
            }
        }
        let len = w.finish(self.tx.take()).unwrap().len();
        let n = self
            .sealer
            .seal(self.aead.as_ref().unwrap(), &mut buf, len)
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// A sealed CPU context resuming at frame `pfn` with page tables at
    /// frame `cr3_pfn`.
    pub fn cpu_context(&mut self, pfn: u64, cr3_pfn: u64) -> Vec<u8> {
        let info = ResumeInfo {
            cr3: cr3_pfn << 12 | 0x3,
            resume_pfn: pfn,
            resume_va: 0xffff_ffff_8100_0000,
            ..Default::default()
        };
        self.sealed(RecordKind::CpuContext, &info.encode())
    }
}

/// What the loader saw for one record (an owned summary of an [`Event`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// [`Event::TokenAccepted`].
    TokenAccepted(Grant),
    /// [`Event::Admitted`].
    Admitted,
    /// [`Event::Paid`].
    Paid { units: u32, pages_paid: u64 },
    /// [`Event::Pages`], with the frames.
    Pages(Vec<u64>),
    /// [`Event::VerifyHashes`], with the payload length.
    Verify(usize),
    /// [`Event::Complete`].
    Complete(ResumeInfo),
    /// [`Event::Commit`], with the payload length.
    Commit(usize),
    /// [`Event::SourceAborted`].
    SourceAborted(u32),
    /// A refusal.
    Refused(Reason),
    /// The stream ended inside a record (after `begin`, before the whole
    /// payload arrived) or inside a header.
    Cut,
}

impl Seen {
    /// Summarises an event.
    pub fn of(event: &Event<'_>) -> Seen {
        match event {
            Event::TokenAccepted(g) => Seen::TokenAccepted(*g),
            Event::Admitted => Seen::Admitted,
            Event::Paid { units, pages_paid } => Seen::Paid {
                units: *units,
                pages_paid: *pages_paid,
            },
            Event::Pages(b) => Seen::Pages(b.pages().map(|p| p.pfn).collect()),
            Event::VerifyHashes(p) => Seen::Verify(p.len()),
            Event::Complete(i) => Seen::Complete(*i),
            Event::Commit(p) => Seen::Commit(p.len()),
            Event::SourceAborted(c) => Seen::SourceAborted(*c),
        }
    }
}

/// Which admission the tests drive.
pub type Adm<'a> = Admission<'a, Gcm, Gcm, Sha256, Vec<ReplayEntry>>;

/// Feeds a byte stream to `adm` record by record, as the kernel's receiver
/// does: read a header, `begin`, read exactly the payload length it names,
/// `finish`. Returns what happened to each record and every reply sent.
/// Stops at the first refusal or when the stream runs out.
pub fn feed(adm: &mut Adm<'_>, mut stream: &[u8]) -> (Vec<Seen>, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    let mut replies = Vec::new();
    let mut reply = Reply::new();
    let mut payload = vec![0u8; HEADER_LEN + MAX_PAYLOAD + TAG_LEN];
    while !stream.is_empty() {
        if stream.len() < HEADER_LEN {
            seen.push(Seen::Cut);
            break;
        }
        let raw: [u8; HEADER_LEN] = stream[..HEADER_LEN].try_into().unwrap();
        stream = &stream[HEADER_LEN..];
        let n = match adm.begin(&raw, &mut reply) {
            Ok(n) => n,
            Err(r) => {
                if !reply.is_empty() {
                    replies.push(reply.as_bytes().to_vec());
                }
                seen.push(Seen::Refused(r));
                break;
            }
        };
        assert!(n <= payload.len(), "begin allowed {n} bytes");
        if stream.len() < n {
            seen.push(Seen::Cut);
            break;
        }
        payload[..n].copy_from_slice(&stream[..n]);
        stream = &stream[n..];
        let result = adm.finish(&mut payload[..n], &mut reply);
        if !reply.is_empty() {
            replies.push(reply.as_bytes().to_vec());
        }
        match result {
            Ok(e) => seen.push(Seen::of(&e)),
            Err(r) => {
                seen.push(Seen::Refused(r));
                break;
            }
        }
    }
    (seen, replies)
}

/// Everything a test loader owns across connections.
pub struct Loader {
    pub provider: Gcm,
    pub replay: ReplaySet<Vec<ReplayEntry>>,
    pub frames: Vec<u64>,
    pub local: MachineDesc,
}

impl Loader {
    /// A loader for [`local_desc`] remembering `slots` tokens.
    pub fn new(slots: usize) -> Self {
        let local = local_desc();
        Self {
            provider: provider(),
            replay: ReplaySet::new(vec![ReplayEntry::EMPTY; slots]),
            frames: vec![0; Adm::frame_words(&local)],
            local,
        }
    }

    /// A new connection's admission at time `now`.
    pub fn admission(&mut self, now: u64) -> Adm<'_> {
        Adm::new(
            &self.provider,
            &Sha256,
            &mut self.replay,
            &mut self.frames,
            self.local,
            provider_key_id(),
            now,
            TARGET_SALT,
        )
        .unwrap()
    }

    /// Feeds `records` (concatenated) to a new connection at time `now`:
    /// what happened, the replies, and the final phase.
    pub fn run_at(&mut self, records: &[Vec<u8>], now: u64) -> (Vec<Seen>, Vec<Vec<u8>>, Phase) {
        let stream: Vec<u8> = records.concat();
        let mut adm = self.admission(now);
        let (seen, replies) = feed(&mut adm, &stream);
        let phase = adm.phase();
        (seen, replies, phase)
    }

    /// [`Loader::run_at`] at [`NOW`].
    pub fn run(&mut self, records: &[Vec<u8>]) -> (Vec<Seen>, Vec<Vec<u8>>, Phase) {
        self.run_at(records, NOW)
    }
}

/// A whole valid migration of the test machine under `token`: token,
/// hello, payments and pages for every frame, CPU context, commit.
pub fn valid_stream(token: &Token, token_bytes: &[u8]) -> (Source, Vec<Vec<u8>>) {
    let mut src = Source::new(token);
    let mut records = vec![src.token_record(token_bytes)];
    // The token reply is needed for the key: compute it the way the target
    // will, with the target salt the tests use.
    let key = stream_key(&Sha256, &src.session_key, &src.salt, &TARGET_SALT);
    src.aead = Some(Gcm::with_key(&key).unwrap());
    records.push(src.hello(&local_desc()));
    let frames = local_frames();
    let unit = token.unit_pages as usize;
    for (i, chunk) in frames.chunks(32).enumerate() {
        let needed = (i * 32 + chunk.len()).div_ceil(unit) as u32;
        if needed > (i * 32).div_ceil(unit) as u32 || i == 0 {
            records.push(src.payment(needed));
        }
        records.push(src.batch(chunk));
    }
    records.push(src.cpu_context(4, 6));
    records.push(src.sealed(RecordKind::Commit, &[]));
    (src, records)
}

/// The target salt the tests use.
pub const TARGET_SALT: [u8; SALT_LEN] = [0x22; SALT_LEN];
