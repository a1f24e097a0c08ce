// SPDX-License-Identifier: GPL-2.0

//! The receiver thread: accept one source at a time, admit it, take its
//! image.
//!
//! Admission comes before anything else: the first record must be a hello
//! no longer than a machine description (a longer one is refused after
//! reading only its 16-byte header), and the source's description must match
//! this machine's. Every page frame a batch names must lie in the RAM map.
//! Pages are inflated as they arrive (`image.rs`); when the image is complete
//! the loader says so, and on the source's commit it jumps (`restore.rs`).

use crate::channel::Channel;
use crate::control;
use crate::errno::errno;
use crate::failure::{Context, Failure};
use crate::image::Image;
use crate::machine;
use crate::pm;
use crate::proto::handoff::Handoff;
use crate::proto::machine::MachineDesc;
use crate::proto::uapi;
use crate::proto::wire::{
    decode_abort, CommitInfo, HelloReply, PageBatch, RecordKind, Refusal, ResumeInfo, VerifyHashes,
    ABORT_TARGET_FAILED, ABORT_VERIFY_FAILED, HEADER_LEN, MAX_PAYLOAD,
};
use crate::restore;
use crate::socket::TcpStream;
use crate::tsc;
use crate::verify::Expected;
use kernel::prelude::*;

/// How long each send or receive may take before the source counts as dead.
const IO_TIMEOUT_MS: u32 = 15_000;

/// Thread entry point.
pub(crate) fn run() {
    let Some(listener) = control::take_listener() else {
        return;
    };
    while !control::stop_requested() {
        let Ok(stream) = listener.accept() else {
            break;
        };
        stream.set_timeouts(IO_TIMEOUT_MS);
        if !control::set_conn(Some(stream.shutdown_handle())) {
            break;
        }
        let result = receive(&stream);
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

/// Sends the verdict on a hello.
fn reply(chan: &mut Channel<'_>, status: Refusal, detail: u32) -> Result<(), Failure> {
    chan.send(
        RecordKind::HelloReply,
        &HelloReply { status, detail }.encode(),
    )
}

/// Admits one source: returns its description if it matches this machine.
fn admit(chan: &mut Channel<'_>, local: &MachineDesc) -> Result<(), Failure> {
    let mut buf = [0u8; MachineDesc::ENCODED_LEN];
    let (header, payload) = chan.recv(&mut buf)?;
    let malformed = |chan: &mut Channel<'_>, reason| {
        let _ = reply(chan, Refusal::Malformed, 0);
        control::update(|n, _| n.refused += 1);
        Err(Failure::new(errno(uapi::EPROTO), reason))
    };
    if header.kind != RecordKind::Hello {
        return malformed(chan, "first record is not a hello");
    }
    let Ok(source) = MachineDesc::decode(payload) else {
        return malformed(chan, "malformed machine description");
    };
    if let Err(m) = source.check_compatible(local) {
        let _ = reply(chan, Refusal::MachineMismatch, m as u32);
        control::update(|n, _| n.refused += 1);
        return Err(Failure::new(errno(uapi::EREMOTEIO), m.as_str()));
    }
    reply(chan, Refusal::Accepted, 0)?;
    control::update(|n, _| {
        n.admitted += 1;
        n.pages_received = 0;
        n.pages_verified = 0;
    });
    Ok(())
}

/// Serves one connection.
fn receive(stream: &TcpStream) -> Result<(), Failure> {
    let local = machine::describe().context("cannot describe this machine")?;
    let mut chan = Channel::new(stream);
    admit(&mut chan, &local)?;
    let frames = local.ranges().last().map_or(0, |r| r.end_pfn());
    let result = Image::claim(frames)
        .map_err(|_| ENOMEM)
        .context("cannot claim memory for the image")
        .and_then(|mut image| {
            pr_info!(
                "source admitted: {} RAM pages, {} vCPUs; claimed {} free frames\n",
                local.total_pages(),
                local.vcpus,
                image.claimed_frames()
            );
            take_image(stream, &mut chan, &local, &mut image)
        });
    control::update(|n, _| n.failed += 1);
    result
}

/// Prepares the jump, reports the image complete, and jumps on commit.
fn restore_on_commit(
    stream: &TcpStream,
    chan: &mut Channel<'_>,
    local: &MachineDesc,
    image: &mut Image,
    info: &ResumeInfo,
) -> Result<(), Failure> {
    let refuse = |chan: &mut Channel<'_>, f: Failure| {
        let _ = chan.send(RecordKind::Abort, &ABORT_TARGET_FAILED.to_le_bytes());
        Err(f)
    };
    let prepared = match restore::prepare(image, local, info) {
        Ok(p) => p,
        Err(f) => return refuse(chan, f),
    };
    let cpus = match pm::OfflineCpus::take() {
        Ok(c) => c,
        Err(e) => return refuse(chan, Failure::new(e, "cannot take secondary CPUs offline")),
    };
    stream.set_quickack();
    chan.send(RecordKind::Complete, &[])?;
    let mut buf = [0u8; CommitInfo::ENCODED_LEN];
    let (header, payload) = chan.recv(&mut buf)?;
    let tsc_commit = tsc::rdtsc();
    if header.kind != RecordKind::Commit {
        return Err(Failure::new(errno(uapi::EPROTO), "expected the commit"));
    }
    let commit =
        CommitInfo::decode(payload).map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
    let handoff = Handoff {
        commit,
        tsc_commit,
        tsc_jump: tsc_commit,
        tsc_khz: tsc::khz(),
        pages_received: received(),
        bytes_received: chan.bytes_received,
        pages_verified: control::with(|c| c.counters.pages_verified).unwrap_or(0),
        staged_pages: info.staged_pages,
        tsc_trampoline: 0,
        tsc_copied: 0,
        pages_in_place: 0,
    };
    pr_info!("commit received; jumping into the image\n");
    Err(restore::jump(&prepared, cpus, handoff))
}

/// In verify mode, checks every page of the image against the source's
/// checkpoint hashes; on any difference tells the source and fails.
fn verify(
    chan: &mut Channel<'_>,
    image: &Image,
    expected: &Expected,
    info: &ResumeInfo,
) -> Result<(), Failure> {
    let refuse = |chan: &mut Channel<'_>, reason| {
        let _ = chan.send(RecordKind::Abort, &ABORT_VERIFY_FAILED.to_le_bytes());
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
        return refuse(chan, "verify hashes incomplete");
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
            refuse(chan, "image failed verification")
        }
    }
}

/// Pages received so far in this migration.
fn received() -> u64 {
    control::with(|c| c.counters.pages_received).unwrap_or(0)
}

/// Receives records until the image is complete, then restores it on the
/// source's commit.
fn take_image(
    stream: &TcpStream,
    chan: &mut Channel<'_>,
    local: &MachineDesc,
    image: &mut Image,
) -> Result<(), Failure> {
    let mut buf = KVVec::from_elem(0u8, HEADER_LEN + MAX_PAYLOAD, GFP_KERNEL)
        .map_err(|_| ENOMEM)
        .context("cannot allocate the receive buffer")?;
    let frames = local.ranges().last().map_or(0, |r| r.end_pfn());
    let mut expected = Expected::new(frames);
    loop {
        let (header, payload) = chan.recv(&mut buf)?;
        match header.kind {
            RecordKind::PageBatch => {
                let batch = PageBatch::decode(payload)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                if batch.pages().any(|p| !local.contains_pfn(p.pfn)) {
                    return Err(Failure::new(
                        errno(uapi::EPROTO),
                        "page outside the RAM map",
                    ));
                }
                for page in batch.pages() {
                    image.place(page.pfn, &page.content)?;
                }
                let n = batch.len() as u64;
                let used = image.pages;
                control::update(|c, _| {
                    c.pages_received += n;
                    c.pages_used = used;
                });
            }
            RecordKind::CpuContext => {
                let info = ResumeInfo::decode(payload)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                pr_info!(
                    "image complete: {} frames ({} in place, {} in slots), {} pages received, {} staged at the checkpoint\n",
                    image.pages,
                    image.direct,
                    image.slotted,
                    received(),
                    info.staged_pages
                );
                if info.verify_pages > 0 || expected.count() > 0 {
                    verify(chan, image, &expected, &info)?;
                }
                return restore_on_commit(stream, chan, local, image, &info);
            }
            RecordKind::VerifyHashes => {
                let record = VerifyHashes::decode(payload)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                expected.take(&record)?;
            }
            RecordKind::Abort => {
                let _ = decode_abort(payload);
                return Err(Failure::new(
                    errno(uapi::ECONNABORTED),
                    "source abandoned the migration",
                ));
            }
            _ => return Err(Failure::new(errno(uapi::EPROTO), "unexpected record")),
        }
    }
}
