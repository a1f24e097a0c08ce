// SPDX-License-Identifier: GPL-2.0

//! The misbehaviours, what the loader must answer to each, and the run.
//!
//! Every scenario but `garbage-first` first follows the protocol: the token
//! record with a fresh salt, the plaintext token reply, the stream key, a
//! sealed hello describing the target's own machine, the sealed hello
//! reply. Then it misbehaves once and reads the loader's answer. The
//! codes are `proto::admission::Reason::code()`; see [`Scenario::expected`].

use crate::conn::{Answer, Conn};
use crate::crypto::random;
use crate::outbox::{payment, Outbox};
use selfmig_proto::bundle::TokenBundle;
use selfmig_proto::crypto::TAG_LEN;
use selfmig_proto::machine::MachineDesc;
use selfmig_proto::seal::SALT_LEN;
use selfmig_proto::wire::{
    decode_abort, HelloReply, RecordKind, Refusal, HEADER_LEN, MAGIC, MAX_PAYLOAD,
};
use std::net::SocketAddr;
use std::time::Duration;

/// One way of misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A sealed page batch header stating more than the kind's bound.
    Oversize,
    /// After paying, a sealed page batch naming a frame outside the RAM map.
    OutOfRange,
    /// A sealed payment sent again, verbatim.
    ReplayRecord,
    /// Two sealed records framed in order but sealed in the other order.
    Reorder,
    /// A plaintext payment after admission.
    Plaintext,
    /// A sealed page batch cut short, then the end of the stream.
    Truncated,
    /// Random bytes instead of the token record.
    GarbageFirst,
    /// After paying, a sealed page batch whose compressed page is a valid
    /// LZ4 block of ten bytes, not a page.
    BadLz4,
    /// After paying, a sealed page batch whose page is a patch of a page
    /// the loader never received.
    PatchUnsent,
}

/// Every scenario, in the order `--help` lists them.
pub const ALL: [Scenario; 9] = [
    Scenario::Oversize,
    Scenario::OutOfRange,
    Scenario::ReplayRecord,
    Scenario::Reorder,
    Scenario::Plaintext,
    Scenario::Truncated,
    Scenario::GarbageFirst,
    Scenario::BadLz4,
    Scenario::PatchUnsent,
];

/// Reason codes (`proto::admission::Reason::code`).
mod code {
    pub(super) const STREAM_AUTH: u32 = 141;
    pub(super) const NOT_SEALED: u32 = 142;
    pub(super) const BAD_RECORD: u32 = 151;
    pub(super) const OUT_OF_ORDER: u32 = 152;
    pub(super) const MALFORMED: u32 = 154;
    pub(super) const PFN_OUTSIDE_MAP: u32 = 155;
}

/// What the loader must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Refuse with one of these codes.
    Refused(&'static [u32]),
    /// Close the connection without a word.
    Closed,
}

impl Scenario {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Oversize => "oversize",
            Scenario::OutOfRange => "out-of-range",
            Scenario::ReplayRecord => "replay-record",
            Scenario::Reorder => "reorder",
            Scenario::Plaintext => "plaintext",
            Scenario::Truncated => "truncated",
            Scenario::GarbageFirst => "garbage-first",
            Scenario::BadLz4 => "bad-lz4",
            Scenario::PatchUnsent => "patch-unsent",
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether it misbehaves only after being admitted (and so needs a
    /// token and the target's machine description).
    pub fn needs_admission(self) -> bool {
        self != Scenario::GarbageFirst
    }

    /// The loader's answer that passes, from `proto::admission`:
    ///
    /// * oversize: `begin()` refuses the header, `BadRecord(Oversize)`,
    ///   151 (the loader logs "record too long for its kind");
    /// * out-of-range: the batch opens, `pages()` finds the frame outside
    ///   the map, `PfnOutsideMap`, 155;
    /// * replay-record: the replayed header's counter is not the next,
    ///   `OutOfOrder`, 152 (had the header been renumbered, its tag would
    ///   fail: `StreamAuth`, 141, also passes);
    /// * reorder: the headers count in order but the first record was
    ///   sealed under the next nonce, `StreamAuth`, 141 (a verbatim swap
    ///   would be `OutOfOrder`, 152, also passes);
    /// * plaintext: `decode_sealed_header` finds no sealed bit,
    ///   `NotSealed`, 142;
    /// * truncated: `begin()` accepts the header and the loader waits for
    ///   the payload, which ends: it fails ("receiving from the source
    ///   failed") and closes without a reply;
    /// * garbage-first: the token phase's `Header::decode` finds no magic,
    ///   `BadRecord(BadMagic)`, 151, in a plaintext token reply;
    /// * bad-lz4: the batch is well formed and paid for, but its block
    ///   decompresses to ten bytes: the loader aborts with `Malformed`,
    ///   154 ("a compressed page does not decompress to one page");
    /// * patch-unsent: the batch is well formed and paid for, but patches
    ///   a page never sent: `Malformed`, 154 ("a patch for a page that
    ///   never arrived").
    pub fn expected(self) -> Expect {
        use code::*;
        match self {
            Scenario::Oversize | Scenario::GarbageFirst => Expect::Refused(&[BAD_RECORD]),
            Scenario::OutOfRange => Expect::Refused(&[PFN_OUTSIDE_MAP]),
            Scenario::ReplayRecord => Expect::Refused(&[OUT_OF_ORDER, STREAM_AUTH]),
            Scenario::Reorder => Expect::Refused(&[STREAM_AUTH, OUT_OF_ORDER]),
            Scenario::Plaintext => Expect::Refused(&[NOT_SEALED]),
            Scenario::Truncated => Expect::Closed,
            Scenario::BadLz4 | Scenario::PatchUnsent => Expect::Refused(&[MALFORMED]),
        }
    }
}

/// How the loader answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A refusal with this code (token reply or sealed abort).
    Refused(u32),
    /// The connection closed with no reply.
    Closed,
    /// Anything else: an acceptance, silence, garbage, a local failure.
    Other(String),
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The loader's last answer.
    pub outcome: Outcome,
    /// Whether the scenario got as far as misbehaving (a refusal before
    /// that never passes).
    pub misbehaved: bool,
}

impl Report {
    /// Whether the loader refused `scenario` the expected way.
    pub fn passed(&self, scenario: Scenario) -> bool {
        self.misbehaved
            && match (scenario.expected(), &self.outcome) {
                (Expect::Refused(codes), Outcome::Refused(c)) => codes.contains(c),
                (Expect::Closed, Outcome::Closed) => true,
                _ => false,
            }
    }
}

/// Where and as whom to misbehave.
pub struct Target {
    /// The loader's address.
    pub to: SocketAddr,
    /// The token bundle (scenarios that need admission).
    pub bundle: Option<TokenBundle>,
    /// The target's machine description (scenarios that need admission).
    pub machine: Option<MachineDesc>,
    /// How long to wait for a refusal after a misbehaving header.
    pub grace: Duration,
    /// How long to wait for any answer.
    pub timeout: Duration,
}

/// Plays `scenario` against `target`.
pub fn run(scenario: Scenario, target: &Target) -> Report {
    match play(scenario, target) {
        Ok(outcome) => Report {
            outcome,
            misbehaved: true,
        },
        Err(outcome) => Report {
            outcome,
            misbehaved: false,
        },
    }
}

/// A local failure as an outcome.
fn local<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Outcome + '_ {
    move |e| Outcome::Other(format!("{what}: {e}"))
}

/// Plays the scenario: `Err` if it stopped before misbehaving.
fn play(scenario: Scenario, t: &Target) -> Result<Outcome, Outcome> {
    let mut conn = Conn::connect(&t.to, t.grace, t.timeout).map_err(local("cannot connect"))?;
    let mut out = Outbox::new();
    if scenario == Scenario::GarbageFirst {
        let mut junk = random::<HEADER_LEN>().map_err(local("no random bytes"))?;
        if junk[..4] == MAGIC {
            junk[0] ^= 0xff;
        }
        return misbehave(&mut conn, &out, &[&junk]);
    }
    let missing = |what: &str| Outcome::Other(format!("{what} needed"));
    let bundle = t.bundle.as_ref().ok_or_else(|| missing("a token"))?;
    let machine = t.machine.as_ref().ok_or_else(|| missing("a RAM map"))?;
    admit(&mut conn, &mut out, bundle, machine)?;
    let sent = local("send failed");
    let ram_frame = machine.ranges().first().map_or(0, |r| r.start_pfn);
    match scenario {
        Scenario::Oversize => {
            let len = (MAX_PAYLOAD + TAG_LEN + 1) as u32;
            let header = out.sealed_header(RecordKind::PageBatch, len);
            misbehave(&mut conn, &out, &[&header])
        }
        Scenario::OutOfRange => {
            conn.send(&out.payment(bundle, 1)).map_err(sent)?;
            let batch = out.batch(&[outside_frame(machine)]);
            let batch = out.seal(batch);
            misbehave(&mut conn, &out, &[&batch])
        }
        Scenario::ReplayRecord => {
            let pay = out.payment(bundle, 1);
            conn.send(&pay).map_err(sent)?;
            misbehave(&mut conn, &out, &[&pay])
        }
        Scenario::Reorder => {
            let first = out.plain(RecordKind::Payment, &payment(bundle, 1));
            let second = out.batch(&[ram_frame]);
            let second = out.seal(second);
            let first = out.seal(first);
            misbehave(&mut conn, &out, &[&first, &second])
        }
        Scenario::Plaintext => {
            let pay = out.plain(RecordKind::Payment, &payment(bundle, 1));
            misbehave(&mut conn, &out, &[&pay])
        }
        Scenario::Truncated => {
            let batch = out.batch(&[ram_frame]);
            let batch = out.seal(batch);
            let cut = HEADER_LEN + (batch.len() - HEADER_LEN) / 2;
            conn.send(&batch[..cut]).map_err(sent)?;
            conn.close_write();
            Ok(outcome(conn.answer(out.aead())))
        }
        Scenario::BadLz4 => {
            conn.send(&out.payment(bundle, 1)).map_err(sent)?;
            // An LZ4 block of literals only: token 0xa0 (ten literals, no
            // match), then the ten bytes.
            let mut block = vec![0xa0u8];
            block.extend_from_slice(b"not a page");
            let batch = out.compressed_batch(ram_frame, &block);
            let batch = out.seal(batch);
            misbehave(&mut conn, &out, &[&batch])
        }
        Scenario::PatchUnsent => {
            conn.send(&out.payment(bundle, 1)).map_err(sent)?;
            let batch = out.patch_batch(ram_frame);
            let batch = out.seal(batch);
            misbehave(&mut conn, &out, &[&batch])
        }
        Scenario::GarbageFirst => unreachable!("handled above"),
    }
}

/// Token, token reply, hello, hello reply: admitted, or the loader's
/// answer.
fn admit(
    conn: &mut Conn,
    out: &mut Outbox,
    bundle: &TokenBundle,
    machine: &MachineDesc,
) -> Result<(), Outcome> {
    let salt = random::<SALT_LEN>().map_err(local("no random bytes"))?;
    let sent = local("send failed");
    conn.send(&out.token(bundle, &salt)).map_err(&sent)?;
    match conn.answer(None) {
        Answer::TokenReply(r) if r.accepted() => out.start_stream(bundle, &salt, &r.salt),
        a => return Err(outcome(a)),
    }
    let hello = out.sealed(RecordKind::Hello, &machine.encode());
    conn.send(&hello).map_err(&sent)?;
    match conn.answer(out.aead()) {
        Answer::Sealed(RecordKind::HelloReply, p)
            if HelloReply::decode(&p).is_ok_and(|r| r.status == Refusal::Accepted) =>
        {
            Ok(())
        }
        a => Err(outcome(a)),
    }
}

/// Sends `records` one by one, each header first, stopping as soon as the
/// loader answers; returns its answer.
fn misbehave(conn: &mut Conn, out: &Outbox, records: &[&[u8]]) -> Result<Outcome, Outcome> {
    for record in records {
        if conn.send_staged(record).map_err(local("send failed"))? {
            break;
        }
    }
    Ok(outcome(conn.answer(out.aead())))
}

/// A frame outside the machine's RAM map: the one after the first range,
/// which is in a hole when another range follows (touching ranges are
/// merged), else beyond the map.
pub fn outside_frame(machine: &MachineDesc) -> u64 {
    machine.ranges().first().map_or(0, |r| r.end_pfn())
}

/// What an answer means for the report.
fn outcome(answer: Answer) -> Outcome {
    match answer {
        Answer::TokenReply(r) if !r.accepted() => Outcome::Refused(r.code),
        Answer::TokenReply(_) => Outcome::Other("token accepted".into()),
        Answer::Sealed(RecordKind::Abort, p) => decode_abort(&p).map_or_else(
            |_| Outcome::Other("malformed abort".into()),
            Outcome::Refused,
        ),
        Answer::Sealed(kind, _) => Outcome::Other(format!("unexpected {kind:?} record")),
        Answer::Closed => Outcome::Closed,
        Answer::Silent => Outcome::Other("no answer".into()),
        Answer::Garbled(what) => Outcome::Other(what.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use selfmig_proto::machine::RamRange;

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
        assert_eq!(Scenario::from_name("nice"), None);
        assert!(!Scenario::GarbageFirst.needs_admission());
        assert!(Scenario::Truncated.needs_admission());
    }

    #[test]
    fn verdicts() {
        let r = |outcome, misbehaved| Report {
            outcome,
            misbehaved,
        };
        assert!(r(Outcome::Refused(155), true).passed(Scenario::OutOfRange));
        assert!(!r(Outcome::Refused(155), false).passed(Scenario::OutOfRange));
        assert!(!r(Outcome::Refused(126), true).passed(Scenario::OutOfRange));
        assert!(r(Outcome::Refused(141), true).passed(Scenario::ReplayRecord));
        assert!(r(Outcome::Refused(152), true).passed(Scenario::Reorder));
        assert!(r(Outcome::Closed, true).passed(Scenario::Truncated));
        assert!(!r(Outcome::Closed, true).passed(Scenario::Oversize));
        assert!(!r(Outcome::Other("no answer".into()), true).passed(Scenario::Truncated));
    }

    #[test]
    fn outside_frames() {
        let mut d = MachineDesc::new(1, 4, [0; 4]);
        d.push_range(RamRange {
            start_pfn: 1,
            nr_pages: 0x9e,
        })
        .unwrap();
        assert_eq!(outside_frame(&d), 0x9f);
        d.push_range(RamRange {
            start_pfn: 0x100,
            nr_pages: 0x100,
        })
        .unwrap();
        assert_eq!(outside_frame(&d), 0x9f);
        assert!(!d.contains_pfn(outside_frame(&d)));
    }
}
