// SPDX-License-Identifier: GPL-2.0

//! The loader's admission state machine: what it accepts from a source, in
//! what order, and why it refuses.
//!
//! The loader is the only privileged code facing the network, and the
//! source is not trusted. [`Admission`] is the whole of its judgement, as
//! pure, allocation-free logic over the [`super::crypto`] traits: the loader
//! feeds it each record's header, reads exactly the payload length it is
//! told, feeds the payload, sends the reply it is handed, and acts on the
//! [`Event`]. The host tests and the fuzzer drive the same code.
//!
//! ```text
//! phase        record in (source to target)      reply / event
//! AwaitToken   Token (plaintext): token + salt   TokenReply (plaintext)
//! AwaitHello   Hello (sealed)                    HelloReply (sealed)
//! Streaming    Payment, PageBatch, VerifyHashes  events only
//!              CpuContext                        Complete event; the loader
//!                                                seals Complete itself
//! AwaitCommit  Commit                            Commit event: jump
//! any          Abort                             SourceAborted event
//! ```
//!
//! Verify before reading: [`Admission::begin`] checks a header (magic,
//! version, sealed bit, kind allowed in this phase, length bound, counter)
//! before a payload byte is read, and every bound is the kind's fixed one.
//! Verify before trusting: nothing in a token's body is used before its tag
//! verifies, nothing in a sealed record before its tag does. Bound by what
//! was paid: a page is accepted only if its frame is in this machine's RAM
//! map and, when the frame is new to the image, the payment covers it.
//!
//! A refusal ends the session: the machine moves to [`Phase::Closed`],
//! hands back a reply that tells the source why (a plaintext token reply
//! before the token is accepted, a sealed `Abort` with the [`Reason`] code
//! after), and refuses everything after. The token's id is burnt when the
//! first sealed record authenticates, not when the token opens: whoever
//! replays a captured token without its session key cannot spend it.

use super::chain::{Chain, ChainError, Meter, Payment};
use super::crypto::{scrub, Aead, Hash256, SessionAead, TAG_LEN};
use super::machine::{MachineDesc, Mismatch};
use super::replay::{ReplayEntry, ReplayError, ReplaySet};
use super::seal::{
    decode_sealed_header, stream_key, Direction, Opener, SealError, Sealer, SALT_LEN,
};
use super::token::{Token, TokenError, TokenHeader, EKEYREVOKED, TOKEN_ID_LEN, TOKEN_LEN};
use super::wire::{
    decode_abort, encode_record, Header, HelloReply, PageBatch, RecordKind, Refusal, ResumeInfo,
    Sequence, WireError, HEADER_LEN, PFN_LIMIT, TOKEN_RECORD_LEN, TOKEN_REPLY_LEN,
};
use core::ops::DerefMut;

// The wire format states the token record's length on its own.
const _: () = assert!(TOKEN_LEN + SALT_LEN == TOKEN_RECORD_LEN);

/// Why admission refused a source. Every reason has a stable code
/// ([`Reason::code`]), sent to the source (in the token reply or a sealed
/// `Abort`) and logged; codes start at 101 so that they never collide with
/// the `ABORT_*` codes of `wire.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The token was refused (codes 101–111).
    Token(TokenError),
    /// The token's id was admitted before (112).
    Replayed,
    /// Too many unexpired tokens are remembered to admit another (113).
    ReplayFull,
    /// The first record is not a token (114).
    NoToken,
    /// The source's machine differs from this one (121–126: 120 plus the
    /// [`Mismatch`] code).
    Mismatch(Mismatch),
    /// The hello is not a valid machine description (127).
    BadHello,
    /// The guest has more RAM than the token grants (128).
    GuestTooLarge,
    /// The guest has more vCPUs than the token grants (129).
    TooManyVcpus,
    /// A payment or page was refused (131–136).
    Payment(ChainError),
    /// A sealed record failed authentication: altered, reordered,
    /// replayed, truncated and re-framed, or from the other direction (141).
    StreamAuth,
    /// A plaintext record after the token (142).
    NotSealed,
    /// A sealed record shorter or longer than its header says (143).
    StreamTruncated,
    /// The record counter is exhausted (144).
    StreamExhausted,
    /// A record header is invalid: magic, version, kind or length (151).
    BadRecord(WireError),
    /// A record counter is not the one expected (152).
    OutOfOrder,
    /// A record of a kind not allowed at this point (153).
    Unexpected,
    /// A payload does not decode (154).
    Malformed(WireError),
    /// A page outside this machine's RAM map (155).
    PfnOutsideMap,
    /// The CPU context resumes from a frame not in the image (156).
    ResumeOutsideImage,
    /// The session is over; nothing more is accepted (157).
    Closed,
    /// The crypto backend failed (158).
    Crypto,
}

/// Stable codes of the reasons without a nested code.
mod code {
    pub(super) const REPLAYED: u32 = 112;
    pub(super) const REPLAY_FULL: u32 = 113;
    pub(super) const NO_TOKEN: u32 = 114;
    pub(super) const MISMATCH_BASE: u32 = 120;
    pub(super) const BAD_HELLO: u32 = 127;
    pub(super) const GUEST_TOO_LARGE: u32 = 128;
    pub(super) const TOO_MANY_VCPUS: u32 = 129;
    pub(super) const STREAM_AUTH: u32 = 141;
    pub(super) const NOT_SEALED: u32 = 142;
    pub(super) const STREAM_TRUNCATED: u32 = 143;
    pub(super) const STREAM_EXHAUSTED: u32 = 144;
    pub(super) const BAD_RECORD: u32 = 151;
    pub(super) const OUT_OF_ORDER: u32 = 152;
    pub(super) const UNEXPECTED: u32 = 153;
    pub(super) const MALFORMED: u32 = 154;
    pub(super) const PFN_OUTSIDE_MAP: u32 = 155;
    pub(super) const RESUME_OUTSIDE_IMAGE: u32 = 156;
    pub(super) const CLOSED: u32 = 157;
    pub(super) const CRYPTO: u32 = 158;
}

impl Reason {
    /// The stable reason code.
    pub fn code(&self) -> u32 {
        match self {
            Reason::Token(e) => e.code(),
            Reason::Replayed => code::REPLAYED,
            Reason::ReplayFull => code::REPLAY_FULL,
            Reason::NoToken => code::NO_TOKEN,
            Reason::Mismatch(m) => code::MISMATCH_BASE + *m as u32,
            Reason::BadHello => code::BAD_HELLO,
            Reason::GuestTooLarge => code::GUEST_TOO_LARGE,
            Reason::TooManyVcpus => code::TOO_MANY_VCPUS,
            Reason::Payment(e) => e.code(),
            Reason::StreamAuth => code::STREAM_AUTH,
            Reason::NotSealed => code::NOT_SEALED,
            Reason::StreamTruncated => code::STREAM_TRUNCATED,
            Reason::StreamExhausted => code::STREAM_EXHAUSTED,
            Reason::BadRecord(_) => code::BAD_RECORD,
            Reason::OutOfOrder => code::OUT_OF_ORDER,
            Reason::Unexpected => code::UNEXPECTED,
            Reason::Malformed(_) => code::MALFORMED,
            Reason::PfnOutsideMap => code::PFN_OUTSIDE_MAP,
            Reason::ResumeOutsideImage => code::RESUME_OUTSIDE_IMAGE,
            Reason::Closed => code::CLOSED,
            Reason::Crypto => code::CRYPTO,
        }
    }

    /// The reason for a code received from a target (for the source's
    /// report). Reasons that carry a wire error come back with
    /// [`WireError::BadField`] in it; unknown codes give `None`.
    pub fn from_code(v: u32) -> Option<Self> {
        use TokenError as T;
        Some(match v {
            101 => Reason::Token(T::Truncated),
            102 => Reason::Token(T::BadMagic),
            103 => Reason::Token(T::BadVersion),
            104 => Reason::Token(T::BadLength),
            105 => Reason::Token(T::UnknownKey),
            106 => Reason::Token(T::Forged),
            107 => Reason::Token(T::Expired),
            108 => Reason::Token(T::NoGrant),
            109 => Reason::Token(T::Malformed),
            110 => Reason::Token(T::Crypto),
            111 => Reason::Token(T::NoSpace),
            code::REPLAYED => Reason::Replayed,
            code::REPLAY_FULL => Reason::ReplayFull,
            code::NO_TOKEN => Reason::NoToken,
            121..=126 => Reason::Mismatch(Mismatch::from_u32(v - code::MISMATCH_BASE)?),
            code::BAD_HELLO => Reason::BadHello,
            code::GUEST_TOO_LARGE => Reason::GuestTooLarge,
            code::TOO_MANY_VCPUS => Reason::TooManyVcpus,
            131 => Reason::Payment(ChainError::WrongLink),
            132 => Reason::Payment(ChainError::StaleLink),
            133 => Reason::Payment(ChainError::BeyondChain),
            134 => Reason::Payment(ChainError::Overpayment),
            135 => Reason::Payment(ChainError::Unpaid),
            136 => Reason::Payment(ChainError::BeyondGrant),
            code::STREAM_AUTH => Reason::StreamAuth,
            code::NOT_SEALED => Reason::NotSealed,
            code::STREAM_TRUNCATED => Reason::StreamTruncated,
            code::STREAM_EXHAUSTED => Reason::StreamExhausted,
            code::BAD_RECORD => Reason::BadRecord(WireError::BadField),
            code::OUT_OF_ORDER => Reason::OutOfOrder,
            code::UNEXPECTED => Reason::Unexpected,
            code::MALFORMED => Reason::Malformed(WireError::BadField),
            code::PFN_OUTSIDE_MAP => Reason::PfnOutsideMap,
            code::RESUME_OUTSIDE_IMAGE => Reason::ResumeOutsideImage,
            code::CLOSED => Reason::Closed,
            code::CRYPTO => Reason::Crypto,
            _ => return None,
        })
    }

    /// A short, stable description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Token(e) => e.as_str(),
            Reason::Replayed => "token already used",
            Reason::ReplayFull => "too many unexpired tokens remembered",
            Reason::NoToken => "first record is not a token",
            Reason::Mismatch(m) => m.as_str(),
            Reason::BadHello => "malformed machine description",
            Reason::GuestTooLarge => "guest RAM exceeds the granted pages",
            Reason::TooManyVcpus => "guest vCPUs exceed the grant",
            Reason::Payment(e) => e.as_str(),
            Reason::StreamAuth => "record failed authentication",
            Reason::NotSealed => "plaintext record after admission",
            Reason::StreamTruncated => "sealed record truncated",
            Reason::StreamExhausted => "record counter exhausted",
            Reason::BadRecord(e) => e.as_str(),
            Reason::OutOfOrder => "record out of order",
            Reason::Unexpected => "unexpected record",
            Reason::Malformed(e) => e.as_str(),
            Reason::PfnOutsideMap => "page outside the RAM map",
            Reason::ResumeOutsideImage => "resume frame not in the image",
            Reason::Closed => "session closed",
            Reason::Crypto => "crypto backend failed",
        }
    }

    /// The (positive) errno a kernel caller reports.
    pub fn errno(&self) -> i32 {
        use super::uapi::{EBADMSG, EINVAL, ENOKEY, ENOSPC, EPROTO, EREMOTEIO};
        match self {
            Reason::Token(e) => e.errno(),
            Reason::Replayed => EKEYREVOKED,
            Reason::ReplayFull => ENOSPC,
            Reason::NoToken => ENOKEY,
            Reason::Mismatch(_) => EREMOTEIO,
            Reason::BadHello => EPROTO,
            Reason::GuestTooLarge | Reason::TooManyVcpus => super::chain::EDQUOT,
            Reason::Payment(e) => e.errno(),
            Reason::StreamAuth | Reason::StreamTruncated => EBADMSG,
            Reason::NotSealed => EPROTO,
            Reason::StreamExhausted => super::seal::EOVERFLOW,
            Reason::BadRecord(e) => e.errno(),
            Reason::OutOfOrder
            | Reason::Unexpected
            | Reason::Malformed(_)
            | Reason::PfnOutsideMap
            | Reason::ResumeOutsideImage => EPROTO,
            Reason::Closed => EINVAL,
            Reason::Crypto => super::token::EIO,
        }
    }
}

impl From<TokenError> for Reason {
    fn from(e: TokenError) -> Self {
        Reason::Token(e)
    }
}

impl From<ChainError> for Reason {
    fn from(e: ChainError) -> Self {
        Reason::Payment(e)
    }
}

impl From<ReplayError> for Reason {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Replayed => Reason::Replayed,
            ReplayError::Full => Reason::ReplayFull,
        }
    }
}

impl From<SealError> for Reason {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Header(w) => Reason::BadRecord(w),
            SealError::NotSealed => Reason::NotSealed,
            SealError::Truncated | SealError::TrailingBytes => Reason::StreamTruncated,
            SealError::Auth | SealError::Failed => Reason::StreamAuth,
            SealError::Exhausted => Reason::StreamExhausted,
            SealError::NoSpace | SealError::Crypto => Reason::Crypto,
        }
    }
}

/// The payload of a [`RecordKind::TokenReply`] record.
///
/// ```text
/// offset size field
///      0    4 code    0: accepted, else a Reason code
///      4    4 detail  zero (reserved)
///      8   16 salt    the target's salt (zero on refusal)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenReply {
    /// 0 when the token is accepted, else the [`Reason`] code.
    pub code: u32,
    /// Reserved, zero.
    pub detail: u32,
    /// The target's salt for the stream key.
    pub salt: [u8; SALT_LEN],
}

impl TokenReply {
    /// Whether the token was accepted.
    pub fn accepted(&self) -> bool {
        self.code == 0
    }

    /// Encodes the payload.
    pub fn encode(&self) -> [u8; TOKEN_REPLY_LEN] {
        let mut out = [0u8; TOKEN_REPLY_LEN];
        out[0..4].copy_from_slice(&self.code.to_le_bytes());
        out[4..8].copy_from_slice(&self.detail.to_le_bytes());
        out[8..].copy_from_slice(&self.salt);
        out
    }

    /// Decodes a payload of exactly [`TOKEN_REPLY_LEN`] bytes.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        super::wire::exact_len(payload, TOKEN_REPLY_LEN)?;
        let salt: [u8; SALT_LEN] = payload
            .get(8..8 + SALT_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated)?;
        Ok(Self {
            code: u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]),
            detail: u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]),
            salt,
        })
    }
}

/// Builds the source's first record: the token as minted and the source's
/// salt, with record counter `seq` (0 on a new connection). Returns its
/// length.
pub fn encode_token_record(
    token: &[u8],
    source_salt: &[u8; SALT_LEN],
    seq: u32,
    out: &mut [u8],
) -> Result<usize, WireError> {
    if token.len() != TOKEN_LEN {
        return Err(WireError::BadField);
    }
    let mut payload = [0u8; TOKEN_RECORD_LEN];
    payload[..TOKEN_LEN].copy_from_slice(token);
    payload[TOKEN_LEN..].copy_from_slice(source_salt);
    encode_record(RecordKind::Token, seq, &payload, out)
}

/// Room for any reply admission hands back (the largest is a plaintext
/// token reply; a sealed hello reply or abort is smaller).
pub const REPLY_CAP: usize = HEADER_LEN + TOKEN_REPLY_LEN + TAG_LEN;

/// A record for the loader to send, filled by [`Admission`]; empty when
/// there is nothing to send.
#[derive(Debug, Clone)]
pub struct Reply {
    buf: [u8; REPLY_CAP],
    len: usize,
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}

impl Reply {
    /// An empty reply.
    pub const fn new() -> Self {
        Self {
            buf: [0; REPLY_CAP],
            len: 0,
        }
    }

    /// The record's bytes; empty when there is nothing to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the reply.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// What a token grants, as the loader reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Most distinct frames the image may use.
    pub pages: u64,
    /// Most vCPUs.
    pub vcpus: u32,
    /// Pages one unit (one link) buys.
    pub unit_pages: u32,
    /// Price per unit, in the provider's units.
    pub price_per_unit: u64,
    /// Links in the payment chain.
    pub chain_len: u32,
    /// Unix time from which the token is refused.
    pub expiry: u64,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the token (the only record read in plaintext).
    AwaitToken,
    /// Waiting for the sealed hello.
    AwaitHello,
    /// Receiving payments, pages and hashes until the CPU context.
    Streaming,
    /// The image is complete; waiting for the commit.
    AwaitCommit,
    /// Committed: the loader jumps into the image.
    Done,
    /// Refused or abandoned; nothing more is accepted.
    Closed,
}

/// What the loader should do after a record was accepted.
#[derive(Debug, Clone, Copy)]
pub enum Event<'p> {
    /// The token verified; the reply (a plaintext token reply with the
    /// target's salt) must be sent. Report the grant.
    TokenAccepted(Grant),
    /// The hello authenticated, matches this machine and fits the grant;
    /// the reply (a sealed hello reply) must be sent. Claim memory now.
    Admitted,
    /// A payment was accepted.
    Paid {
        /// Units paid in total.
        units: u32,
        /// Pages paid for in total (capped at the grant).
        pages_paid: u64,
    },
    /// A page batch whose every frame is in the RAM map and paid for:
    /// place the pages.
    Pages(PageBatch<'p>),
    /// Authenticated verification hashes (`verify=1`), not judged here.
    VerifyHashes(&'p [u8]),
    /// The CPU context: the image is complete. Prepare the jump, then seal
    /// and send `Complete` with [`Admission::seal_outbound`].
    Complete(ResumeInfo),
    /// The commit (its payload, not judged here): jump.
    Commit(&'p [u8]),
    /// The source abandoned the migration with this code.
    SourceAborted(u32),
}

/// Why an [`Admission`] could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// The frame bitmap is shorter than [`Admission::frame_words`].
    FramesTooSmall,
    /// This machine's description has no RAM.
    NoRam,
}

/// The per-connection state that exists once a token is accepted.
struct Session<S> {
    aead: S,
    opener: Opener,
    sealer: Sealer,
    id: [u8; TOKEN_ID_LEN],
    expiry: u64,
    burnt: bool,
    chain: Chain,
    meter: Meter,
    grant: Grant,
}

/// Sets bit `pfn` in `bits`; returns whether it was clear.
fn test_and_set(bits: &mut [u64], pfn: u64) -> bool {
    let Some(word) = bits.get_mut((pfn / 64) as usize) else {
        return false;
    };
    let mask = 1u64 << (pfn % 64);
    let was_clear = *word & mask == 0;
    *word |= mask;
    was_clear
}

/// Whether bit `pfn` is set.
fn test(bits: &[u64], pfn: u64) -> bool {
    bits.get((pfn / 64) as usize)
        .is_some_and(|w| w & (1u64 << (pfn % 64)) != 0)
}

/// Physical address bits of CR3 (bits 12 to 51).
const CR3_ADDR_MASK: u64 = (PFN_LIMIT - 1) << 12;

/// One source's admission, from its token to its commit.
///
/// `P` opens tokens (keyed with the provider key), `S` seals the stream (a
/// new instance per connection), `H` is SHA-256, `R` the replay set's
/// storage. The loader provides the replay set (kept across connections)
/// and a bitmap with one bit per frame
/// of this machine ([`Admission::frame_words`] words), sized by its own RAM
/// map, never by the wire; it can be allocated once and is cleared here.
pub struct Admission<'a, P, S, H, R>
where
    P: Aead,
    S: SessionAead,
    H: Hash256,
    R: DerefMut<Target = [ReplayEntry]>,
{
    provider: &'a P,
    hash: &'a H,
    replay: &'a mut ReplaySet<R>,
    frames: &'a mut [u64],
    local: MachineDesc,
    key_id: u16,
    now: u64,
    target_salt: [u8; SALT_LEN],
    phase: Phase,
    rx: Sequence,
    tx: Sequence,
    pending: Option<[u8; HEADER_LEN]>,
    session: Option<Session<S>>,
    /// This target's share of a downtime, as its rehearsal measured it
    /// (microseconds; 0: not measured), told the source on acceptance.
    fixed_us: u32,
}

impl<'a, P, S, H, R> Admission<'a, P, S, H, R>
where
    P: Aead,
    S: SessionAead,
    H: Hash256,
    R: DerefMut<Target = [ReplayEntry]>,
{
    /// Words of frame bitmap a machine described by `local` needs.
    pub fn frame_words(local: &MachineDesc) -> usize {
        local
            .ranges()
            .last()
            .map_or(0, |r| r.end_pfn().div_ceil(64) as usize)
    }

    /// A session for one connection, waiting for its token.
    ///
    /// `key_id` is the provider key's id ([`super::token::key_id`]), `now`
    /// the wall-clock time in unix seconds, and `target_salt` 16 fresh
    /// random bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: &'a P,
        hash: &'a H,
        replay: &'a mut ReplaySet<R>,
        frames: &'a mut [u64],
        local: MachineDesc,
        key_id: u16,
        now: u64,
        target_salt: [u8; SALT_LEN],
    ) -> Result<Self, SetupError> {
        let words = Self::frame_words(&local);
        if words == 0 {
            return Err(SetupError::NoRam);
        }
        if frames.len() < words {
            return Err(SetupError::FramesTooSmall);
        }
        frames.fill(0);
        Ok(Self {
            provider,
            hash,
            replay,
            frames,
            local,
            key_id,
            now,
            target_salt,
            phase: Phase::AwaitToken,
            rx: Sequence::new(),
            tx: Sequence::new(),
            pending: None,
            session: None,
            fixed_us: 0,
        })
    }

    /// Tells the source, on accepting its hello, that this target's share
    /// of the downtime is about `us` microseconds (what its rehearsal of the
    /// jump and the image's resume took), for its convergence policy.
    pub fn with_fixed_us(mut self, us: u32) -> Self {
        self.fixed_us = us;
        self
    }

    /// Where the session is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// What the accepted token grants.
    pub fn grant(&self) -> Option<Grant> {
        self.session.as_ref().map(|s| s.grant)
    }

    /// Pages paid for so far.
    pub fn pages_paid(&self) -> u64 {
        self.session.as_ref().map_or(0, |s| s.meter.paid_pages())
    }

    /// Units paid so far.
    pub fn units_paid(&self) -> u32 {
        self.session.as_ref().map_or(0, |s| s.meter.units_paid())
    }

    /// Distinct frames of the image accepted so far.
    pub fn pages_used(&self) -> u64 {
        self.session.as_ref().map_or(0, |s| s.meter.used())
    }

    /// Whether frame `pfn` has been received.
    pub fn has_frame(&self, pfn: u64) -> bool {
        test(self.frames, pfn)
    }

    /// Ends the session with `reason`, filling `reply` with what tells the
    /// source why.
    fn refuse(&mut self, reason: Reason, reply: &mut Reply) -> Reason {
        self.phase = Phase::Closed;
        self.pending = None;
        reply.clear();
        let code = reason.code();
        let len = if self.session.is_some() {
            self.seal_into(RecordKind::Abort, &code.to_le_bytes(), &mut reply.buf)
                .ok()
        } else {
            let payload = TokenReply {
                code,
                detail: 0,
                salt: [0; SALT_LEN],
            }
            .encode();
            encode_record(
                RecordKind::TokenReply,
                self.tx.take(),
                &payload,
                &mut reply.buf,
            )
            .ok()
        };
        reply.len = len.unwrap_or(0);
        reason
    }

    /// Frames and seals an outgoing record into `out`.
    fn seal_into(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Reason> {
        let session = self.session.as_mut().ok_or(Reason::Closed)?;
        let seq = self.tx.take();
        let len = encode_record(kind, seq, payload, out).map_err(Reason::Malformed)?;
        Ok(session.sealer.seal(&session.aead, out, len)?)
    }

    /// Seals an outgoing record of the loader's own (`Complete`, or an
    /// `Abort` with an `ABORT_*` code) into `out`, which needs room for the
    /// header, the payload and the tag. Returns its length.
    pub fn seal_outbound(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Reason> {
        if matches!(self.phase, Phase::AwaitToken | Phase::Closed) {
            return Err(Reason::Closed);
        }
        self.seal_into(kind, payload, out)
    }

    /// The kinds a source may send in the current phase.
    fn allowed(&self, kind: RecordKind) -> bool {
        use RecordKind as K;
        match self.phase {
            Phase::AwaitToken => kind == K::Token,
            Phase::AwaitHello => matches!(kind, K::Hello | K::Abort),
            Phase::Streaming => matches!(
                kind,
                K::Payment | K::PageBatch | K::VerifyHashes | K::CpuContext | K::Abort
            ),
            Phase::AwaitCommit => matches!(kind, K::Commit | K::Abort),
            Phase::Done | Phase::Closed => false,
        }
    }

    /// Checks a record's header before any of its payload is read; returns
    /// the number of payload bytes to read next (and pass to
    /// [`Admission::finish`]). On refusal `reply` holds what to send.
    pub fn begin(&mut self, raw: &[u8; HEADER_LEN], reply: &mut Reply) -> Result<usize, Reason> {
        reply.clear();
        if matches!(self.phase, Phase::Done | Phase::Closed) {
            return Err(Reason::Closed);
        }
        if self.pending.is_some() {
            return Err(self.refuse(Reason::Unexpected, reply));
        }
        let header = if self.phase == Phase::AwaitToken {
            match Header::decode(raw) {
                Ok(h) if h.kind == RecordKind::Token => h,
                Ok(_) => return Err(self.refuse(Reason::NoToken, reply)),
                Err(e) => return Err(self.refuse(Reason::BadRecord(e), reply)),
            }
        } else {
            match decode_sealed_header(raw) {
                Ok(h) => h,
                Err(e) => return Err(self.refuse(e.into(), reply)),
            }
        };
        if self.rx.check(&header).is_err() {
            return Err(self.refuse(Reason::OutOfOrder, reply));
        }
        if !self.allowed(header.kind) {
            return Err(self.refuse(Reason::Unexpected, reply));
        }
        self.pending = Some(*raw);
        Ok(header.len as usize)
    }

    /// Judges the payload of the record [`Admission::begin`] accepted, read
    /// into `payload` (exactly the length `begin` returned; sealed records
    /// are opened in place). On acceptance returns what to do, with
    /// `reply` holding any record to send first; on refusal `reply` holds
    /// what to send, and the session is closed.
    pub fn finish<'p>(
        &mut self,
        payload: &'p mut [u8],
        reply: &mut Reply,
    ) -> Result<Event<'p>, Reason> {
        reply.clear();
        let Some(raw) = self.pending.take() else {
            if matches!(self.phase, Phase::Done | Phase::Closed) {
                return Err(Reason::Closed);
            }
            return Err(self.refuse(Reason::Unexpected, reply));
        };
        let result = if self.phase == Phase::AwaitToken {
            self.token(payload, reply)
        } else {
            self.sealed(&raw, payload, reply)
        };
        result.map_err(|reason| self.refuse(reason, reply))
    }

    /// Opens and judges the token record.
    fn token<'p>(&mut self, payload: &[u8], reply: &mut Reply) -> Result<Event<'p>, Reason> {
        if payload.len() != TOKEN_RECORD_LEN {
            // Say what is wrong with the token's header if anything; the
            // record is the wrong length in any case.
            let head = &payload[..payload.len().min(TOKEN_LEN)];
            TokenHeader::decode(head)?;
            return Err(TokenError::Truncated.into());
        }
        let now = self.replay.observe(self.now);
        let (token_bytes, salt_bytes) = payload.split_at(TOKEN_LEN);
        let token = Token::open(self.provider, self.key_id, token_bytes, now)?;
        self.replay.check(&token.id)?;
        let mut source_salt = [0u8; SALT_LEN];
        source_salt.copy_from_slice(salt_bytes);
        let mut key = stream_key(
            self.hash,
            &token.session_key,
            &source_salt,
            &self.target_salt,
        );
        let aead = S::with_key(&key);
        scrub(&mut key);
        let aead = aead.map_err(|_| Reason::Crypto)?;
        let grant = Grant {
            pages: token.granted_pages,
            vcpus: token.granted_vcpus,
            unit_pages: token.unit_pages,
            price_per_unit: token.price_per_unit,
            chain_len: token.chain_len,
            expiry: token.expiry,
        };
        self.session = Some(Session {
            aead,
            opener: Opener::new(Direction::SourceToTarget),
            sealer: Sealer::new(Direction::TargetToSource),
            id: token.id,
            expiry: token.expiry,
            burnt: false,
            chain: Chain::new(token.anchor, token.chain_len),
            meter: Meter::new(token.granted_pages, token.unit_pages),
            grant,
        });
        let payload = TokenReply {
            code: 0,
            detail: 0,
            salt: self.target_salt,
        }
        .encode();
        reply.len = encode_record(
            RecordKind::TokenReply,
            self.tx.take(),
            &payload,
            &mut reply.buf,
        )
        .map_err(Reason::Malformed)?;
        self.phase = Phase::AwaitHello;
        Ok(Event::TokenAccepted(grant))
    }

    /// Opens a sealed record and judges it.
    fn sealed<'p>(
        &mut self,
        raw: &[u8; HEADER_LEN],
        payload: &'p mut [u8],
        reply: &mut Reply,
    ) -> Result<Event<'p>, Reason> {
        let session = self.session.as_mut().ok_or(Reason::Closed)?;
        let (header, plain) = session.opener.open(&session.aead, raw, payload)?;
        if !session.burnt {
            // The source proved it holds the session key: the token is
            // spent whatever happens next.
            self.replay.insert(&session.id, session.expiry)?;
            session.burnt = true;
        }
        let plain: &'p [u8] = plain;
        match header.kind {
            RecordKind::Abort => {
                let code = decode_abort(plain).map_err(Reason::Malformed)?;
                self.phase = Phase::Closed;
                Ok(Event::SourceAborted(code))
            }
            RecordKind::Hello => self.hello(plain, reply),
            RecordKind::Payment => self.payment(plain),
            RecordKind::PageBatch => self.pages(plain),
            RecordKind::VerifyHashes => Ok(Event::VerifyHashes(plain)),
            RecordKind::CpuContext => self.cpu_context(plain),
            RecordKind::Commit => {
                self.phase = Phase::Done;
                Ok(Event::Commit(plain))
            }
            _ => Err(Reason::Unexpected),
        }
    }

    /// Judges the hello: a valid description of this machine's shape that
    /// fits the grant.
    fn hello<'p>(&mut self, plain: &[u8], reply: &mut Reply) -> Result<Event<'p>, Reason> {
        let source = MachineDesc::decode(plain).map_err(|_| Reason::BadHello)?;
        source
            .check_compatible(&self.local)
            .map_err(Reason::Mismatch)?;
        let grant = self.grant().ok_or(Reason::Closed)?;
        if source.total_pages() > grant.pages {
            return Err(Reason::GuestTooLarge);
        }
        if source.vcpus > grant.vcpus {
            return Err(Reason::TooManyVcpus);
        }
        let accepted = HelloReply {
            status: Refusal::Accepted,
            detail: self.fixed_us,
        }
        .encode();
        reply.len = self.seal_into(RecordKind::HelloReply, &accepted, &mut reply.buf)?;
        self.phase = Phase::Streaming;
        Ok(Event::Admitted)
    }

    /// Judges a payment: in order, within the chain and the grant, and a
    /// true link.
    fn payment<'p>(&mut self, plain: &[u8]) -> Result<Event<'p>, Reason> {
        let payment = Payment::decode(plain).map_err(Reason::Malformed)?;
        let session = self.session.as_mut().ok_or(Reason::Closed)?;
        if payment.index <= session.chain.paid() {
            return Err(ChainError::StaleLink.into());
        }
        if payment.index > session.chain.len() {
            return Err(ChainError::BeyondChain.into());
        }
        session.meter.check_payment(payment.index)?;
        let units = session.chain.pay(self.hash, payment.index, &payment.link)?;
        session.meter.set_paid(units)?;
        Ok(Event::Paid {
            units,
            pages_paid: session.meter.paid_pages(),
        })
    }

    /// Judges a page batch: every frame in the RAM map, every new frame
    /// paid for.
    fn pages<'p>(&mut self, plain: &'p [u8]) -> Result<Event<'p>, Reason> {
        let batch = PageBatch::decode(plain).map_err(Reason::Malformed)?;
        let session = self.session.as_mut().ok_or(Reason::Closed)?;
        for page in batch.pages() {
            if !self.local.contains_pfn(page.pfn) {
                return Err(Reason::PfnOutsideMap);
            }
            if !test(self.frames, page.pfn) {
                session.meter.use_pages(1)?;
                test_and_set(self.frames, page.pfn);
            }
        }
        Ok(Event::Pages(batch))
    }

    /// Judges the CPU context: it must resume from frames of the image.
    fn cpu_context<'p>(&mut self, plain: &[u8]) -> Result<Event<'p>, Reason> {
        let info = ResumeInfo::decode(plain).map_err(Reason::Malformed)?;
        let cr3_pfn = (info.cr3 & CR3_ADDR_MASK) >> 12;
        for pfn in [info.resume_pfn, cr3_pfn] {
            if !self.local.contains_pfn(pfn) || !test(self.frames, pfn) {
                return Err(Reason::ResumeOutsideImage);
            }
        }
        self.phase = Phase::AwaitCommit;
        Ok(Event::Complete(info))
    }
}
