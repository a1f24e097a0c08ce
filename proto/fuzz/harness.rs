// SPDX-License-Identifier: GPL-2.0
//! The fuzz harness: arbitrary bytes become a stream of records that is fed
//! to the loader's admission state machine exactly as the kernel receiver
//! feeds it (header, `begin`, payload of the length it names, `finish`).
//!
//! Random bytes alone would never get past the sealed token, so the input
//! is read as a small program that a simulated source runs with the test
//! keys: the first five bytes choose the token (valid, forged, expired,
//! under another key; its grant, unit and chain length), and each following
//! operation appends raw bytes, a record sealed with the right key, a
//! payment with a true or false link, a page batch, a CPU context, a hello,
//! or flips a bit of what was built so far. The fuzzer thus reaches every
//! phase and every refusal, and can still send anything at all.
//!
//! Oracles (a panic is a finding): no payload longer than the largest
//! sealed record is ever requested; pages used never exceed pages paid,
//! which never exceed the grant; every accepted page is in the RAM map;
//! nothing is accepted after a refusal; only a token the provider minted,
//! unaltered, unexpired and under the loader's key is accepted, and a
//! commit is only reached after one.
//!
//! Shared by the fuzz target (`fuzz_targets/admission.rs`) and the
//! regression test (`tests/fuzz_regressions.rs`), both of which include
//! `tests/support` as `super::support`.

use super::support::{
    local_desc, local_frames, mint, provider_key_id, sample_token, Gcm, Loader, Source, NOW, SEED,
    TARGET_SALT,
};
use selfmig_proto::admission::{Event, Phase, Reason, Reply};
use selfmig_proto::chain::{chain_anchor, Payment};
use selfmig_proto::crypto::{SessionAead, TAG_LEN};
use selfmig_proto::seal::stream_key;
use selfmig_proto::token::Token;
use selfmig_proto::wire::{RecordKind, HEADER_LEN, MAX_PAYLOAD};

/// Largest payload `begin` may ever ask the loader to read.
const MAX_READ: usize = MAX_PAYLOAD + TAG_LEN;

/// Longest stream built from one input.
const MAX_STREAM: usize = 4 << 20;

/// What one run reached, for the regression tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The final phase.
    pub phase: Phase,
    /// Records accepted.
    pub accepted: usize,
    /// The refusal code, if refused.
    pub refused: Option<u32>,
}

/// Reads input bytes, yielding zeroes once they run out.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The token the input's first five bytes choose, the bytes to send, the
/// bytes the provider minted, and whether those are admissible (unexpired,
/// under the loader's key).
fn choose_token(input: &mut Input<'_>) -> (Token, Vec<u8>, Vec<u8>, bool) {
    let flavour = input.byte();
    let pages = 700 + u64::from(input.byte() % 128);
    let vcpus = 1 + u32::from(input.byte() % 3);
    let unit = 1 + u32::from(input.byte() % 128);
    let chain_len = 1 + u32::from(input.byte() % 48);
    let mut token = Token {
        granted_pages: pages,
        granted_vcpus: vcpus,
        unit_pages: unit,
        chain_len,
        anchor: chain_anchor(&super::support::Sha256, &SEED, chain_len),
        ..sample_token()
    };
    let mut admissible = true;
    match flavour % 8 {
        1 => {
            token.expiry = NOW;
            admissible = false;
        }
        2 => {
            token.key_id = provider_key_id().wrapping_add(1);
            admissible = false;
        }
        _ => {}
    }
    let minted = mint(&token, [flavour; 12]);
    let mut bytes = minted.clone();
    if flavour % 8 == 3 {
        let at = 24 + usize::from(flavour / 8) % (bytes.len() - 24);
        bytes[at] ^= 1;
    }
    (token, bytes, minted, admissible)
}

/// Builds the record stream the input describes.
fn build(input: &mut Input<'_>, token: &Token, token_bytes: &[u8]) -> Vec<u8> {
    let mut src = Source::new(token);
    let key = stream_key(
        &super::support::Sha256,
        &src.session_key,
        &src.salt,
        &TARGET_SALT,
    );
    src.aead = Some(Gcm::with_key(&key).expect("key"));
    let frames = local_frames();
    let mut paid = 0u32;
    let mut stream = Vec::new();
    if !input.byte().is_multiple_of(16) {
        stream.extend(src.token_record(token_bytes));
    }
    while !input.is_empty() && stream.len() < MAX_STREAM {
        match input.byte() % 10 {
            // Raw bytes, anything at all.
            0 => {
                let n = usize::from(input.byte());
                stream.extend_from_slice(input.bytes(n));
            }
            // A record of any kind, correctly sealed, with input payload.
            1 => {
                let kind =
                    RecordKind::from_u16(u16::from(input.byte() % 12)).unwrap_or(RecordKind::Abort);
                let n = usize::from(input.u16()).min(kind.max_payload()).min(512);
                let payload = input.bytes(n).to_vec();
                stream.extend(src.sealed(kind, &payload));
            }
            // A payment: relative to what was paid, or absolute; a true
            // link, or a false one.
            2 => {
                let d = input.byte();
                let index = if d < 128 {
                    paid.saturating_add(u32::from(d % 8))
                } else {
                    u32::from(d - 128)
                };
                let mut link = src.link(index);
                if input.byte().is_multiple_of(8) {
                    link[0] ^= 1;
                }
                paid = paid.max(index);
                stream.extend(src.sealed(RecordKind::Payment, &Payment { index, link }.encode()));
            }
            // A page batch of RAM frames (or any frame): data, zero or sparse.
            3 => {
                let count = 1 + usize::from(input.byte() % 32);
                let pfns: Vec<u64> = (0..count)
                    .map(|_| {
                        let v = input.u16();
                        if v & 0x8000 == 0 {
                            frames[usize::from(v) % frames.len()]
                        } else {
                            u64::from(v & 0x7fff)
                        }
                    })
                    .collect();
                stream.extend(src.batch(&pfns));
            }
            // The CPU context.
            4 => {
                let resume = frames[usize::from(input.u16()) % frames.len()];
                let cr3 = frames[usize::from(input.u16()) % frames.len()];
                stream.extend(src.cpu_context(resume, cr3));
            }
            // Commit or abort.
            5 => {
                let kind = if input.byte().is_multiple_of(2) {
                    RecordKind::Commit
                } else {
                    RecordKind::Abort
                };
                let payload = if kind == RecordKind::Abort {
                    vec![1, 0, 0, 0]
                } else {
                    vec![]
                };
                stream.extend(src.sealed(kind, &payload));
            }
            // A hello, possibly with a byte changed.
            6 | 7 => {
                let mut desc = local_desc().encode();
                let at = usize::from(input.u16());
                let x = input.byte();
                if let Some(b) = desc.get_mut(at) {
                    *b ^= x;
                }
                stream.extend(src.sealed(RecordKind::Hello, &desc));
            }
            // Pay everything the next 32 frames need, in order.
            8 => {
                let next = paid.saturating_add(1);
                stream.extend(src.payment(next));
                paid = next;
            }
            // Flip a bit of what was built so far.
            _ => {
                let at = usize::from(input.u16()) * 8 + usize::from(input.byte() % 8);
                if !stream.is_empty() {
                    let i = (at / 8) % stream.len();
                    stream[i] ^= 1 << (at % 8);
                }
            }
        }
    }
    stream
}

/// Runs one input.
pub fn run(data: &[u8]) -> Summary {
    let mut input = Input { data };
    let (token, token_bytes, minted, admissible) = choose_token(&mut input);
    let stream = build(&mut input, &token, &token_bytes);
    let mut token_accepted = false;

    let mut loader = Loader::new(4);
    let local = loader.local;
    let mut adm = loader.admission(NOW);
    let mut reply = Reply::new();
    let mut payload = vec![0u8; MAX_READ];
    let mut rest = &stream[..];
    let mut accepted = 0;
    let mut refused = None;
    while rest.len() >= HEADER_LEN {
        let raw: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().expect("header");
        rest = &rest[HEADER_LEN..];
        let n = match adm.begin(&raw, &mut reply) {
            Ok(n) => n,
            Err(r) => {
                refused = Some(r.code());
                break;
            }
        };
        assert!(n <= MAX_READ, "begin asked for {n} bytes");
        if rest.len() < n {
            break;
        }
        payload[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        match adm.finish(&mut payload[..n], &mut reply) {
            Ok(event) => {
                accepted += 1;
                if let Event::Pages(batch) = event {
                    for page in batch.pages() {
                        assert!(local.contains_pfn(page.pfn), "page outside the map");
                    }
                }
                if matches!(event, Event::TokenAccepted(_)) {
                    // Only what the provider minted, unaltered (the input
                    // may have flipped a forged bit back), unexpired and
                    // under the loader's key.
                    let sent = &stream[HEADER_LEN..HEADER_LEN + minted.len()];
                    assert!(
                        admissible && sent == &minted[..],
                        "a bad token was accepted"
                    );
                    token_accepted = true;
                }
            }
            Err(r) => {
                refused = Some(r.code());
                assert!(!reply.is_empty() || adm.phase() == Phase::Closed);
                break;
            }
        }
        assert!(adm.pages_used() <= adm.pages_paid(), "used beyond paid");
        if let Some(g) = adm.grant() {
            assert!(adm.pages_paid() <= g.pages, "paid beyond the grant");
        }
    }
    if let Some(code) = refused {
        // A refusal closes the session; after the commit (the loader has
        // jumped) records are refused without one.
        match adm.phase() {
            Phase::Closed => {}
            Phase::Done => assert_eq!(code, Reason::Closed.code()),
            other => panic!("refused ({code}) but in phase {other:?}"),
        }
        // Nothing more is accepted.
        assert!(adm.begin(&[0; HEADER_LEN], &mut reply).is_err());
    }
    if adm.phase() == Phase::Done {
        assert!(token_accepted);
    }
    Summary {
        phase: adm.phase(),
        accepted,
        refused,
    }
}

/// Inputs that reach each phase and some refusals: the fuzzer's seeds
/// (`fuzz/seeds/`), and what the regression test checks the harness can
/// still reach.
#[allow(dead_code)] // Used by the regression test, not the fuzz target.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Token bytes: valid, 768 pages, 2 vCPUs, 64-page units, 12 links.
    let valid = [0u8, 68, 1, 63, 11];
    let mut full = valid.to_vec();
    full.push(1); // send the token record
    full.extend([6, 0xff, 0xff, 0]); // the hello, unchanged
    for chunk in 0..24u16 {
        if chunk % 2 == 0 {
            full.push(8); // pay the next unit
        }
        full.extend([3, 31]); // 32 frames
        for i in 0..32u16 {
            full.extend((chunk * 32 + i).to_le_bytes());
        }
    }
    full.extend([4, 4, 0, 6, 0]); // resume at frame 4, CR3 at frame 6
    full.extend([5, 0]); // commit
    let mut unpaid = valid.to_vec();
    unpaid.extend([1, 6, 0xff, 0xff, 0, 3, 0, 0, 0]);
    let mut forged = vec![3u8, 68, 1, 63, 11];
    forged.extend([1, 6, 0xff, 0xff, 0]);
    let mut flipped = full.clone();
    flipped.extend([9, 0x00, 0x10, 3]);
    vec![
        ("full", full),
        ("unpaid", unpaid),
        ("forged", forged),
        ("flipped", flipped),
        ("raw", {
            let mut raw = vec![0u8; 5];
            raw.extend([0, 0, 20]);
            raw.extend(b"SMIG\x01\x00\x01\x00\xb0\x00\x00\x00\x00\x00\x00\x00XXXX");
            raw
        }),
    ]
}
