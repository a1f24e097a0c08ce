// SPDX-License-Identifier: GPL-2.0

//! The receiver thread: accept one source at a time and judge everything it
//! sends through `proto::admission`, the loader's whole state machine.
//!
//! For each record the thread reads the 16-byte header, asks
//! [`Admission::begin`] how many payload bytes to read (the kind's fixed
//! bound: nothing larger is ever read), reads exactly those, hands them to
//! [`Admission::finish`], sends the reply it is handed, and acts on the
//! event: memory is claimed only once the token verified and the sealed
//! hello matched this machine and fit the grant; pages are placed only when
//! their frames are in the RAM map and paid for. A refusal is sent to the
//! source (a token reply before admission, a sealed abort after) and ends
//! the connection; the image is freed and the loader listens again.

use crate::control;
use crate::crypto::{random_bytes, Gcm, Sha256};
use crate::errno::errno;
use crate::failure::{Context, Failure};
use crate::image::Image;
use crate::machine;
use crate::pm;
use crate::proto::admission::{Admission, Event, Reason, Reply};
use crate::proto::crypto::TAG_LEN;
use crate::proto::handoff::Handoff;
use crate::proto::machine::MachineDesc;
use crate::proto::replay::{ReplayEntry, ReplaySet};
use crate::proto::seal::SALT_LEN;
use crate::proto::uapi;
use crate::proto::wire::{
    CommitInfo, RecordKind, ResumeInfo, VerifyHashes, WireError, ABORT_TARGET_FAILED,
    ABORT_VERIFY_FAILED, FINAL_ROUND, HEADER_LEN, MAX_PAYLOAD,
};
use crate::relocate::MovedText;
use crate::restore::{self, Prepared};
use crate::socket::TcpStream;
use crate::tsc;
use crate::unwritten::Watch;
use crate::verify::Expected;
use kernel::prelude::*;

/// How long each send or receive may take before the source counts as dead.
const IO_TIMEOUT_MS: u32 = 15_000;

/// How long the jump waits for the device to send the commit's ACK: the
/// downtime grows by what it takes (well under a millisecond here).
const COMMIT_ACK_SEND_MS: u32 = 20;

/// The loader's admission state machine, with the kernel's crypto.
type Session<'a> = Admission<'a, Gcm, Gcm, Sha256, KVec<ReplayEntry>>;

/// Thread entry point.
pub(crate) fn run() {
    let Some(listener) = control::take_listener() else {
        return;
    };
    // Kept while the loader listens: its mappings of RAM split (joined
    // again when it stops).
    let watch = machine::describe().ok().map(|local| Watch::new(&local));
    while !control::stop_requested() {
        let Ok(stream) = listener.accept() else {
            break;
        };
        stream.set_timeouts(IO_TIMEOUT_MS);
        if !control::set_conn(Some(stream.shutdown_handle())) {
            break;
        }
        let result = receive(&stream, watch.as_ref());
        control::set_conn(None);
        if let Err(f) = result {
            pr_warn!(
                "migration not completed: {} (errno {})\n",
                f.reason,
                -f.err.to_errno()
            );
            control::update(|_, last| *last = f.reason);
        }
    }
    control::listener_done();
}

/// Wall-clock time in unix seconds.
fn unix_now() -> u64 {
    // SAFETY: No preconditions.
    unsafe { crate::bindings::ktime_get_real_seconds() }.max(0) as u64
}

/// Serves one connection, with the replay set taken from the control state
/// for its duration.
fn receive(stream: &TcpStream, watch: Option<&Watch>) -> Result<(), Failure> {
    let local = machine::describe().context("cannot describe this machine")?;
    let (key, key_id) = control::provider_key().context("no provider key")?;
    let provider = Gcm::new(&key).context("cannot set up the provider key")?;
    let mut replay = control::take_replay().context("replay set busy")?;
    let result = with_session(stream, &provider, &mut replay, &local, key_id, watch);
    control::put_replay(replay);
    result
}

/// This target's share of a downtime for the source's policy: what the
/// rehearsal of the jump and the image's resume took, in microseconds.
fn fixed_us() -> u32 {
    let us = control::with(|c| c.counters.rehearsal_us).unwrap_or(0);
    us.min(u64::from(u32::MAX)) as u32
}

/// Sets the admission session up and runs it.
fn with_session(
    stream: &TcpStream,
    provider: &Gcm,
    replay: &mut ReplaySet<KVec<ReplayEntry>>,
    local: &MachineDesc,
    key_id: u16,
    watch: Option<&Watch>,
) -> Result<(), Failure> {
    let mut frames = KVVec::from_elem(0u64, Session::frame_words(local), GFP_KERNEL)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the frame bitmap")?;
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt);
    let hash = Sha256;
    let mut session = Session::new(
        provider,
        &hash,
        replay,
        &mut frames,
        *local,
        key_id,
        unix_now(),
        salt,
    )
    .map_err(|_| Failure::new(EINVAL, "cannot start an admission session"))?
    // What the rehearsal at `enable` measured (0 when it was skipped):
    // the source's convergence policy counts it in the downtime.
    .with_fixed_us(fixed_us());
    let mut receiver = Receiver {
        stream,
        local,
        watch,
        image: None,
        moved_text: None,
        rehearsed: false,
        expected: Expected::new(local.ranges().last().map_or(0, |r| r.end_pfn())),
        prepared: None,
        tsc_context: 0,
        tsc_complete: 0,
        bytes_received: 0,
        pages_received: 0,
        round: 0,
        aborted: false,
    };
    let result = receiver.serve(&mut session);
    if result.is_err() {
        control::update(|n, _| {
            if receiver.image.is_some() {
                n.failed += 1;
            }
        });
    }
    result
}

/// One connection's progress.
struct Receiver<'a> {
    stream: &'a TcpStream,
    local: &'a MachineDesc,
    /// Watching this kernel's writes, if it could be set up.
    watch: Option<&'a Watch>,
    /// The image, once the source is admitted.
    image: Option<Image>,
    /// This module's code, moved out of the image's way in the second
    /// round (moved back when the session ends without a jump).
    moved_text: Option<MovedText>,
    /// Whether the jump's preparation was rehearsed (once, after the
    /// first attempt to move the code).
    rehearsed: bool,
    /// Verification hashes received (`verify=1`).
    expected: Expected,
    /// The jump, once the image is complete: prepared, CPUs offline.
    prepared: Option<(Prepared, pm::OfflineCpus, ResumeInfo)>,
    /// Time-stamp counter when the CPU context arrived.
    tsc_context: u64,
    /// Time-stamp counter when `Complete` was sent.
    tsc_complete: u64,
    bytes_received: u64,
    pages_received: u64,
    /// The latest pre-copy round pages arrived for.
    round: u32,
    /// An abort was sent: the session is over.
    aborted: bool,
}

impl Receiver<'_> {
    /// Sends what admission handed back, if anything.
    fn send_reply(&self, reply: &Reply) -> Result<(), Failure> {
        if reply.is_empty() {
            return Ok(());
        }
        self.stream
            .send_all(reply.as_bytes())
            .context("sending to the source failed")
    }

    /// A refusal by admission: already answered; counted and reported.
    fn refused(&self, reason: Reason) -> Failure {
        control::update(|n, _| {
            if self.image.is_none() {
                n.refused += 1;
            }
        });
        pr_info!(
            "refused the source: {} (code {})\n",
            reason.as_str(),
            reason.code()
        );
        Failure::new(errno(reason.errno()), reason.as_str())
    }

    /// Tells the source this loader gives up with `code` (an `ABORT_*`),
    /// best effort and once, and fails with `f`.
    fn abort(&mut self, session: &mut Session<'_>, code: u32, f: Failure) -> Failure {
        let mut out = [0u8; HEADER_LEN + 4 + TAG_LEN];
        if !self.aborted {
            self.aborted = true;
            if let Ok(len) = session.seal_outbound(RecordKind::Abort, &code.to_le_bytes(), &mut out)
            {
                let _ = self.stream.send_all(&out[..len]);
            }
        }
        f
    }

    /// Reads and judges records until the commit (which does not return)
    /// or a failure.
    fn serve(&mut self, session: &mut Session<'_>) -> Result<(), Failure> {
        let mut buf = KVVec::from_elem(0u8, HEADER_LEN + MAX_PAYLOAD + TAG_LEN, GFP_KERNEL)
            .map_err(|_| ENOMEM)
            .context("cannot allocate the receive buffer")?;
        let mut reply = Reply::new();
        loop {
            let mut raw = [0u8; HEADER_LEN];
            self.stream
                .recv_exact(&mut raw)
                .context("receiving from the source failed")?;
            let len = match session.begin(&raw, &mut reply) {
                Ok(len) => len,
                Err(reason) => {
                    let _ = self.send_reply(&reply);
                    return Err(self.refused(reason));
                }
            };
            let payload = buf
                .get_mut(..len)
                .ok_or_else(|| Failure::new(errno(uapi::EMSGSIZE), "record too long"))?;
            self.stream
                .recv_exact(payload)
                .context("receiving from the source failed")?;
            self.bytes_received += (HEADER_LEN + len) as u64;
            let event = match session.finish(payload, &mut reply) {
                Ok(event) => event,
                Err(reason) => {
                    let _ = self.send_reply(&reply);
                    return Err(self.refused(reason));
                }
            };
            self.send_reply(&reply)?;
            // A failure of ours after admission is told to the source
            // (sealed; before admission there is no session to seal with).
            if let Err(f) = self.act(session, event) {
                return Err(self.abort(session, ABORT_TARGET_FAILED, f));
            }
        }
    }

    /// Acts on an accepted record.
    fn act(&mut self, session: &mut Session<'_>, event: Event<'_>) -> Result<(), Failure> {
        match event {
            Event::TokenAccepted(grant) => {
                pr_info!(
                    "token accepted: {} pages, {} vCPUs, {} links of {} pages\n",
                    grant.pages,
                    grant.vcpus,
                    grant.chain_len,
                    grant.unit_pages
                );
                control::update(|n, _| {
                    n.pages_granted = grant.pages;
                    n.pages_paid = 0;
                    n.pages_used = 0;
                    n.pages_received = 0;
                    n.pages_verified = 0;
                });
                Ok(())
            }
            Event::Admitted => {
                let frames = self.local.ranges().last().map_or(0, |r| r.end_pfn());
                let t0 = tsc::rdtsc();
                // Before the claim: it allocates what the jump needs.
                let armed = self.watch.and_then(|w| match w.arm(frames) {
                    Ok(armed) => Some(armed),
                    Err(e) => {
                        pr_warn!(
                            "cannot watch this kernel's writes ({:?}); the trampoline compares every slotted page\n",
                            e
                        );
                        None
                    }
                });
                let image = Image::claim(frames, armed)
                    .map_err(|_| ENOMEM)
                    .context("cannot claim memory for the image")?;
                pr_info!(
                    "source admitted: {} RAM pages, {} vCPUs; claimed {} free frames in {} us\n",
                    self.local.total_pages(),
                    self.local.vcpus,
                    image.claimed_frames(),
                    crate::proto::handoff::tsc_delta_us(t0, tsc::rdtsc(), tsc::khz())
                );
                self.image = Some(image);
                control::update(|n, _| n.admitted += 1);
                Ok(())
            }
            Event::Paid { pages_paid, .. } => {
                control::update(|n, _| n.pages_paid = pages_paid);
                Ok(())
            }
            Event::Pages(batch) => {
                let image = self
                    .image
                    .as_mut()
                    .ok_or(Failure::new(errno(uapi::EPROTO), "pages before admission"))?;
                if batch.round != FINAL_ROUND && batch.round > self.round {
                    // A later round: the image's frames are known.
                    self.round = batch.round;
                    if let Err(e) = image.settle() {
                        pr_warn!(
                            "cannot move the reserve out of the image's way ({:?}); the trampoline copies more\n",
                            e
                        );
                    }
                    if self.moved_text.is_none() {
                        self.moved_text = move_text(image);
                    }
                    if !self.rehearsed {
                        self.rehearsed = true;
                        rehearse_jump(image, self.local);
                    }
                }
                let mut bad = None;
                for page in batch.pages() {
                    if let Err(f) = image.place(page.pfn, &page.content) {
                        bad = Some(f);
                        break;
                    }
                }
                if let Some(f) = bad {
                    // A block that does not decompress to a page, or a
                    // patch of a page never sent, is the source's fault:
                    // told as a payload that does not decode; anything
                    // else as this loader's failure.
                    let code = match f.err == errno(uapi::EBADMSG) {
                        true => Reason::Malformed(WireError::BadField).code(),
                        false => ABORT_TARGET_FAILED,
                    };
                    return Err(self.abort(session, code, f));
                }
                self.pages_received += batch.len() as u64;
                let (received, used) = (self.pages_received, session.pages_used());
                control::update(|n, _| {
                    n.pages_received = received;
                    n.pages_used = used;
                });
                Ok(())
            }
            Event::VerifyHashes(bytes) => {
                let record = VerifyHashes::decode(bytes)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                self.expected.take(&record)
            }
            Event::Complete(info) => self.complete(session, &info),
            Event::Commit(payload) => {
                let tsc_commit = tsc::rdtsc();
                let commit = CommitInfo::decode(payload)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                let (mut prepared, cpus, info) = self.prepared.take().ok_or(Failure::new(
                    errno(uapi::EPROTO),
                    "commit before the image was complete",
                ))?;
                let image = self
                    .image
                    .as_ref()
                    .ok_or(Failure::new(errno(uapi::EPROTO), "commit before admission"))?;
                let handoff = Handoff {
                    commit,
                    tsc_commit,
                    tsc_jump: tsc_commit,
                    tsc_khz: tsc::khz(),
                    pages_received: self.pages_received,
                    bytes_received: self.bytes_received,
                    pages_verified: control::with(|c| c.counters.pages_verified).unwrap_or(0),
                    staged_pages: info.staged_pages,
                    tsc_trampoline: 0,
                    tsc_copied: 0,
                    pages_in_place: 0,
                    pages_unwritten: 0,
                    unwritten_misses: 0,
                    image_frames: image.pages,
                    frames_in_place: image.direct,
                    moved_home: image.moved_home,
                    slotted: image.slotted,
                    identical_on_arrival: prepared.identical_on_arrival(),
                    tsc_context: self.tsc_context,
                    tsc_complete: self.tsc_complete,
                };
                // The source powers off once its commit is acknowledged:
                // push the ACK out, and let the device send it before it is
                // quiesced (a reset drops what it has not sent).
                self.stream.set_quickack();
                if !self.stream.wait_sent(COMMIT_ACK_SEND_MS) {
                    pr_warn!(
                        "the commit's ACK was not sent within {} ms; jumping anyway (the source powers off regardless)\n",
                        COMMIT_ACK_SEND_MS
                    );
                }
                Err(restore::jump(&mut prepared, cpus, handoff))
            }
            Event::SourceAborted(code) => {
                pr_info!("the source abandoned the migration (code {})\n", code);
                Err(Failure::new(
                    errno(uapi::ECONNABORTED),
                    "source abandoned the migration",
                ))
            }
        }
    }

    /// The image is complete: verify it if asked, prepare the jump, take
    /// the secondary CPUs offline and tell the source.
    ///
    /// Nothing is logged from here to the jump (a console line is written
    /// with interrupts off, inside the downtime): what there is to say
    /// travels in the hand-off, and the resumed image says it.
    fn complete(&mut self, session: &mut Session<'_>, info: &ResumeInfo) -> Result<(), Failure> {
        self.tsc_context = tsc::rdtsc();
        let image = self.image.as_mut().ok_or(Failure::new(
            errno(uapi::EPROTO),
            "image complete before admission",
        ))?;
        if info.verify_pages > 0 || self.expected.count() > 0 {
            if let Err(f) = verify(image, &self.expected, info) {
                // Answered here with its own code; ends the session.
                return Err(self.abort(session, ABORT_VERIFY_FAILED, f));
            }
        }
        let prepared = restore::prepare(image, self.local, info)?;
        let cpus = pm::OfflineCpus::take()
            .map_err(|e| Failure::new(e, "cannot take secondary CPUs offline"))?;
        self.stream.set_quickack();
        let mut out = [0u8; HEADER_LEN + TAG_LEN];
        let len = session
            .seal_outbound(RecordKind::Complete, &[], &mut out)
            .map_err(|r| Failure::new(errno(r.errno()), r.as_str()))?;
        self.prepared = Some((prepared, cpus, *info));
        let sent = self
            .stream
            .send_all(&out[..len])
            .context("sending to the source failed");
        self.tsc_complete = tsc::rdtsc();
        sent
    }
}

/// In verify mode, checks every page of the image against the source's
/// checkpoint hashes.
fn verify(image: &Image, expected: &Expected, info: &ResumeInfo) -> Result<(), Failure> {
    let failed = |reason| {
        control::update(|c, _| c.verify_failures += 1);
        Err(Failure::new(errno(uapi::EBADMSG), reason))
    };
    let count = expected.count();
    if count != info.verify_pages {
        pr_warn!(
            "verify: the source announced {} page hashes, {} arrived\n",
            info.verify_pages,
            count
        );
        return failed("verify hashes incomplete");
    }
    match expected.check(image) {
        Ok(checked) => {
            pr_info!(
                "verify: all {} pages match their checkpoint hash\n",
                checked
            );
            control::update(|c, _| c.pages_verified = checked);
            Ok(())
        }
        Err(bad) => {
            pr_warn!(
                "verify: {} pages differ from their checkpoint hash, {} never arrived (first: frame {:#x}); not resuming\n",
                bad.differ,
                bad.missing,
                bad.first_pfn
            );
            failed("image failed verification")
        }
    }
}

/// Rehearses the jump's preparation (see [`restore::rehearse`]) and logs
/// what it cost; a failure only costs the rehearsal.
fn rehearse_jump(image: &mut Image, local: &MachineDesc) {
    let t0 = tsc::rdtsc();
    match restore::rehearse(image, local) {
        Ok(()) => pr_info!(
            "rehearsed the jump's preparation in {} us\n",
            crate::proto::handoff::tsc_delta_us(t0, tsc::rdtsc(), tsc::khz())
        ),
        Err(f) => pr_warn!("cannot rehearse the jump's preparation: {}\n", f.reason),
    }
}

/// Moves this module's code out of the image's way (see
/// [`crate::relocate`]); on failure the code stays where it is, and the
/// trampoline's writes to its frames cost more under an emulator.
fn move_text(image: &Image) -> Option<MovedText> {
    let t0 = tsc::rdtsc();
    match MovedText::move_out(|pfn| image.holds(pfn)) {
        Ok(moved) => {
            pr_info!(
                "moved this module's code ({} pages) out of the image's way, other modules' code ({} pages) written once, in {} us\n",
                moved.len(),
                moved.others(),
                crate::proto::handoff::tsc_delta_us(t0, tsc::rdtsc(), tsc::khz())
            );
            Some(moved)
        }
        Err(f) => {
            pr_warn!(
                "cannot move this module's code out of the image's way: {}\n",
                f.reason
            );
            None
        }
    }
}
