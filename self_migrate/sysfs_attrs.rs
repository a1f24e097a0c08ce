// SPDX-License-Identifier: GPL-2.0

//! The attributes of `/sys/kernel/self_migrate/` (see
//! `Documentation/ABI/testing/sysfs-kernel-self_migrate`).

use crate::control::{self, Tracker};
use crate::proto::uapi::{self, ControlError, Endpoint, MAX_TOKEN_LEN};
use crate::refuse::refuse;
use crate::sysfs::{Attr, ShowBuf};
use core::fmt::Write;
use kernel::c_str;
use kernel::prelude::*;

/// Maps a formatting overflow (more than a page; cannot happen for these
/// attributes) to an errno.
fn fmt_err(_: core::fmt::Error) -> Error {
    ENOSPC
}

/// Shows the target endpoint, or `none`.
fn target_show(out: &mut ShowBuf<'_>) -> Result {
    match control::with(|c| c.settings.target)? {
        Some(ep) => {
            let [a, b, c, d] = ep.addr;
            writeln!(out, "{a}.{b}.{c}.{d}:{}", ep.port).map_err(fmt_err)
        }
        None => writeln!(out, "none").map_err(fmt_err),
    }
}

/// Sets the target endpoint: `a.b.c.d:port`.
fn target_store(input: &[u8]) -> Result {
    let ep = Endpoint::parse(input).map_err(|e| refuse("target", e))?;
    control::with(|c| c.settings.target = Some(ep))
}

/// Sets the admission token, written as hexadecimal.
fn token_store(input: &[u8]) -> Result {
    let mut raw = KVec::from_elem(0u8, MAX_TOKEN_LEN, GFP_KERNEL)?;
    let len = uapi::parse_hex_token(input, &mut raw).map_err(|e| refuse("token", e))?;
    let mut token = KVec::with_capacity(len, GFP_KERNEL)?;
    token.extend_from_slice(&raw[..len], GFP_KERNEL)?;
    control::with(|c| c.settings.token = token)
}

/// Shows the downtime target.
fn max_downtime_show(out: &mut ShowBuf<'_>) -> Result {
    let v = control::with(|c| c.settings.max_downtime_ms)?;
    writeln!(out, "{v}").map_err(fmt_err)
}

/// Sets the downtime target in milliseconds.
fn max_downtime_store(input: &[u8]) -> Result {
    let v = uapi::parse_u32_in(input, uapi::MIN_MAX_DOWNTIME_MS, uapi::MAX_MAX_DOWNTIME_MS)
        .map_err(|e| refuse("max_downtime_ms", e))?;
    control::with(|c| c.settings.max_downtime_ms = v)
}

/// Shows whether verify mode is on.
fn verify_show(out: &mut ShowBuf<'_>) -> Result {
    let v = control::with(|c| c.settings.verify)?;
    writeln!(out, "{}", u8::from(v)).map_err(fmt_err)
}

/// Turns verify mode on or off.
fn verify_store(input: &[u8]) -> Result {
    let v = uapi::parse_bool(input).map_err(|e| refuse("verify", e))?;
    control::with(|c| c.settings.verify = v)
}

/// Shows the tracker.
fn tracker_show(out: &mut ShowBuf<'_>) -> Result {
    let t = control::with(|c| c.settings.tracker)?;
    writeln!(out, "{}", t.as_str()).map_err(fmt_err)
}

/// Selects the tracker: `paging` or `hash`.
fn tracker_store(input: &[u8]) -> Result {
    let t = match uapi::trim(input) {
        b"paging" => Tracker::Paging,
        b"hash" => Tracker::Hash,
        _ => return Err(refuse("tracker", ControlError::BadChoice)),
    };
    control::with(|c| c.settings.tracker = t)
}

/// Starts a migration with the current settings when `1` is written.
fn start_store(input: &[u8]) -> Result {
    if !uapi::parse_bool(input).map_err(|e| refuse("start", e))? {
        return Err(refuse("start", ControlError::BadBool));
    }
    let req = control::with(|c| c.request_from_settings())?.map_err(|e| refuse("start", e))?;
    control::start("start", req)
}

/// Aborts the running migration when `1` is written.
fn abort_store(input: &[u8]) -> Result {
    if !uapi::parse_bool(input).map_err(|e| refuse("abort", e))? {
        return Err(refuse("abort", ControlError::BadBool));
    }
    control::abort("abort")
}

/// Shows the state as one word.
fn status_show(out: &mut ShowBuf<'_>) -> Result {
    let (s, _, _) = control::status()?;
    writeln!(out, "{}", s.state.as_str()).map_err(fmt_err)
}

/// Shows progress and results as `key: value` lines.
fn stats_show(out: &mut ShowBuf<'_>) -> Result {
    let (s, x, last_error) = control::status()?;
    (|| -> core::fmt::Result {
        writeln!(out, "state: {}", s.state.as_str())?;
        writeln!(out, "round: {}", s.round)?;
        writeln!(out, "pages_sent: {}", s.pages_sent)?;
        writeln!(out, "bytes_sent: {}", s.bytes_sent)?;
        writeln!(out, "zero_pages: {}", x.zero_pages)?;
        writeln!(out, "free_pages_skipped: {}", x.free_pages)?;
        writeln!(out, "unmapped_pages: {}", x.unmapped_pages)?;
        writeln!(out, "bounce_pages_excluded: {}", x.bounce_pages)?;
        writeln!(out, "dirty_pages: {}", s.dirty_pages)?;
        writeln!(out, "checkpoint_attempts: {}", x.attempts)?;
        writeln!(out, "staged_pages: {}", x.staged_pages)?;
        writeln!(out, "checkpoint_us: {}", x.checkpoint_us)?;
        writeln!(out, "fenced_packets: {}", crate::fence::dropped())?;
        writeln!(out, "expected_downtime_us: {}", s.expected_downtime_us)?;
        writeln!(out, "downtime_us: {}", s.downtime_us)?;
        writeln!(out, "total_ms: {}", s.total_ms)?;
        writeln!(out, "last_errno: {}", s.last_errno)?;
        writeln!(out, "last_error: {last_error}")
    })()
    .map_err(fmt_err)
}

/// The attribute table.
pub(crate) static ATTRS: [Attr; 10] = [
    Attr {
        name: c_str!("target"),
        mode: 0o644,
        show: Some(target_show),
        store: Some(target_store),
    },
    Attr {
        name: c_str!("token"),
        mode: 0o200,
        show: None,
        store: Some(token_store),
    },
    Attr {
        name: c_str!("max_downtime_ms"),
        mode: 0o644,
        show: Some(max_downtime_show),
        store: Some(max_downtime_store),
    },
    Attr {
        name: c_str!("verify"),
        mode: 0o644,
        show: Some(verify_show),
        store: Some(verify_store),
    },
    Attr {
        name: c_str!("tracker"),
        mode: 0o644,
        show: Some(tracker_show),
        store: Some(tracker_store),
    },
    Attr {
        name: c_str!("start"),
        mode: 0o200,
        show: None,
        store: Some(start_store),
    },
    Attr {
        name: c_str!("abort"),
        mode: 0o200,
        show: None,
        store: Some(abort_store),
    },
    Attr {
        name: c_str!("status"),
        mode: 0o444,
        show: Some(status_show),
        store: None,
    },
    Attr {
        name: c_str!("stats"),
        mode: 0o444,
        show: Some(stats_show),
        store: None,
    },
    Attr {
        name: c_str!("version"),
        mode: 0o444,
        show: Some(version_show),
        store: None,
    },
];

/// Shows the wire and ioctl ABI versions.
fn version_show(out: &mut ShowBuf<'_>) -> Result {
    writeln!(
        out,
        "wire {} image {} start_size {} status_size {}",
        crate::proto::wire::VERSION,
        crate::proto::machine::IMAGE_VERSION,
        uapi::StartArgs::SIZE,
        uapi::StatusArgs::SIZE
    )
    .map_err(fmt_err)
}
