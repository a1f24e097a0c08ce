// SPDX-License-Identifier: GPL-2.0

//! The migration thread: connect and admit, pre-copy, (checkpoint, commit).
//!
//! One function per phase, each undoing what it did on failure, so that
//! before commit every failure leaves the guest running as if nothing had
//! happened. The checkpoint and the restore on the target are not
//! implemented yet: after round 0 the migration ends with `EOPNOTSUPP` and
//! tells the target to drop what it received.

use crate::channel::Channel;
use crate::control::{self, Request};
use crate::errno::errno;
use crate::failure::{Context, Failure};
use crate::machine;
use crate::precopy;
use crate::proto::machine::{MachineDesc, Mismatch};
use crate::proto::uapi::{self, State};
use crate::proto::wire::{HelloReply, RecordKind, Refusal};
use crate::socket::TcpStream;
use kernel::prelude::*;

/// How long connecting may take.
const CONNECT_TIMEOUT_MS: u32 = 5_000;

/// How long each send or receive may take before the peer counts as dead.
const IO_TIMEOUT_MS: u32 = 15_000;

/// Abort reason sent to the target: the source gave up.
const ABORT_SOURCE_FAILED: u32 = 1;

/// Monotonic time in nanoseconds.
fn now_ns() -> i64 {
    // SAFETY: `ktime_get` has no preconditions.
    unsafe { crate::bindings::ktime_get() }
}

/// Thread entry point.
pub(crate) fn run() {
    let Some(req) = control::take_request() else {
        return;
    };
    let start = now_ns();
    let result = migrate(&req);
    if let Err(f) = &result {
        pr_warn!(
            "migration failed: {} (errno {})\n",
            f.reason,
            -f.err.to_errno()
        );
    }
    control::finish(result, ((now_ns() - start) / 1_000_000) as u64);
}

/// The whole migration.
fn migrate(req: &Request) -> Result<(), Failure> {
    let desc = machine::describe().context("cannot describe this machine")?;
    let [a, b, c, d] = req.target.addr;
    pr_info!(
        "migrating to {a}.{b}.{c}.{d}:{}: {} RAM pages, {} vCPUs, max downtime {} ms, verify {}, tracker {}\n",
        req.target.port,
        desc.total_pages(),
        desc.vcpus,
        req.max_downtime_ms,
        if req.verify { "on" } else { "off" },
        req.tracker.as_str()
    );
    let stream = TcpStream::connect(&req.target, CONNECT_TIMEOUT_MS)
        .context("cannot connect to the target")?;
    stream.set_timeouts(IO_TIMEOUT_MS);
    control::set_live(Some(stream.shutdown_handle()))?;
    let mut chan = Channel::new(&stream);
    let result = match session(&mut chan, &desc) {
        // An abort shuts the socket down, so the failure the session saw is
        // a broken pipe; report the cause instead.
        Err(_) if control::abort_requested() => Err(control::aborted()),
        Err(f) => {
            // Best effort: tell the target to drop what it has.
            let _ = chan.send(RecordKind::Abort, &ABORT_SOURCE_FAILED.to_le_bytes());
            Err(f)
        }
        Ok(()) => Ok(()),
    };
    // Withdraw the abort handle before the stream is dropped.
    let _ = control::set_live(None);
    result
}

/// Everything that happens over the connection.
fn session(chan: &mut Channel<'_>, desc: &MachineDesc) -> Result<(), Failure> {
    admit(chan, desc)?;
    control::update(|s, _| s.state = State::Precopy);
    precopy::round0(chan, desc)?;
    Err(Failure::new(
        errno(uapi::EOPNOTSUPP),
        "checkpoint and restore not implemented yet",
    ))
}

/// Presents the machine description and waits for the target's verdict.
fn admit(chan: &mut Channel<'_>, desc: &MachineDesc) -> Result<(), Failure> {
    chan.send(RecordKind::Hello, &desc.encode())?;
    let mut buf = [0u8; HelloReply::ENCODED_LEN];
    let (header, payload) = chan.recv(&mut buf)?;
    if header.kind != RecordKind::HelloReply {
        return Err(Failure::new(
            errno(uapi::EPROTO),
            "target answered hello with another record",
        ));
    }
    let reply =
        HelloReply::decode(payload).map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
    let refused = |reason| Err(Failure::new(errno(uapi::EREMOTEIO), reason));
    match reply.status {
        Refusal::Accepted => Ok(()),
        Refusal::Busy => refused("target refused: busy with another migration"),
        Refusal::Malformed => refused("target refused: malformed hello"),
        Refusal::MachineMismatch => match Mismatch::from_u32(reply.detail) {
            Some(Mismatch::ImageVersion) => refused("target refused: image format version differs"),
            Some(Mismatch::PageSize) => refused("target refused: page size differs"),
            Some(Mismatch::Vcpus) => refused("target refused: vCPU count differs"),
            Some(Mismatch::PagingLevels) => refused("target refused: paging levels differ"),
            Some(Mismatch::CpuFeatures) => refused("target refused: target CPU lacks a feature"),
            Some(Mismatch::RamMap) => refused("target refused: RAM map differs"),
            None => refused("target refused: machine mismatch"),
        },
    }
}
