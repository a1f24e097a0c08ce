// SPDX-License-Identifier: GPL-2.0

//! The attributes of `/sys/kernel/self_migrate/` (see
//! `Documentation/ABI/testing/sysfs-kernel-self_migrate`).

use crate::control::{self, Settings, Tracker};
use crate::proto::uapi::{self, ControlError, Endpoint, MAX_TOKEN_LEN};
use crate::refuse::refuse;
use crate::sysfs::{Attr, ShowBuf};
use kernel::c_str;
use kernel::prelude::*;

/// Shows the target endpoint, or `none`.
fn target_show(out: &mut ShowBuf<'_>) -> Result {
    let ep = control::with(|c| c.settings.target)?;
    out.endpoint(ep)
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
    out.line(format_args!("{v}"))
}

/// Sets the downtime target in milliseconds.
fn max_downtime_store(input: &[u8]) -> Result {
    let v = uapi::parse_u32_in(input, uapi::MIN_MAX_DOWNTIME_MS, uapi::MAX_MAX_DOWNTIME_MS)
        .map_err(|e| refuse("max_downtime_ms", e))?;
    control::with(|c| c.settings.max_downtime_ms = v)
}

/// Shows a 0/1 setting.
fn show_flag(out: &mut ShowBuf<'_>, get: fn(&Settings) -> bool) -> Result {
    let v = control::with(|c| get(&c.settings))?;
    out.line(format_args!("{}", u8::from(v)))
}

/// Sets a 0/1 setting; anything else is refused in `name`'s words.
fn store_flag(input: &[u8], name: &'static str, set: fn(&mut Settings, bool)) -> Result {
    let v = uapi::parse_bool(input).map_err(|e| refuse(name, e))?;
    control::with(|c| set(&mut c.settings, v))
}

/// Shows whether verify mode is on.
fn verify_show(out: &mut ShowBuf<'_>) -> Result {
    show_flag(out, |s| s.verify)
}

/// Turns verify mode on or off.
fn verify_store(input: &[u8]) -> Result {
    store_flag(input, "verify", |s, v| s.verify = v)
}

/// Shows whether guest-side auto-converge is on.
fn auto_converge_show(out: &mut ShowBuf<'_>) -> Result {
    show_flag(out, |s| s.auto_converge)
}

/// Turns guest-side auto-converge on or off.
fn auto_converge_store(input: &[u8]) -> Result {
    store_flag(input, "auto_converge", |s, v| s.auto_converge = v)
}

/// Shows whether pages are LZ4-compressed.
fn compress_show(out: &mut ShowBuf<'_>) -> Result {
    show_flag(out, |s| s.compress)
}

/// Turns LZ4 compression of pages on or off.
fn compress_store(input: &[u8]) -> Result {
    store_flag(input, "compress", |s, v| s.compress = v)
}

/// Shows whether the checkpoint is rehearsed before connecting.
fn rehearse_show(out: &mut ShowBuf<'_>) -> Result {
    show_flag(out, |s| s.rehearse)
}

/// Turns the rehearsal of the checkpoint on or off.
fn rehearse_store(input: &[u8]) -> Result {
    store_flag(input, "rehearse", |s, v| s.rehearse = v)
}

/// Shows the tracker.
fn tracker_show(out: &mut ShowBuf<'_>) -> Result {
    let t = control::with(|c| c.settings.tracker)?;
    out.line(format_args!("{}", t.as_str()))
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
    out.line(format_args!("{}", s.state.as_str()))
}

/// Shows progress and results as `key: value` lines.
fn stats_show(out: &mut ShowBuf<'_>) -> Result {
    let (s, x, last_error) = control::status()?;
    out.line(format_args!("state: {}", s.state.as_str()))?;
    out.line(format_args!("round: {}", s.round))?;
    out.line(format_args!("pages_sent: {}", s.pages_sent))?;
    out.line(format_args!("bytes_sent: {}", s.bytes_sent))?;
    out.line(format_args!("zero_pages: {}", x.zero_pages))?;
    out.line(format_args!("compressed_pages: {}", x.compressed_pages))?;
    out.line(format_args!("patched_pages: {}", x.patched_pages))?;
    out.line(format_args!("free_pages_skipped: {}", x.free_pages))?;
    out.line(format_args!("free_pages_marked: {}", x.free_marked))?;
    out.line(format_args!("kept_mark_pages: {}", x.kept_mark_pages))?;
    out.line(format_args!("unmapped_pages: {}", x.unmapped_pages))?;
    out.line(format_args!("bounce_pages_excluded: {}", x.bounce_pages))?;
    out.line(format_args!("dirty_pages: {}", s.dirty_pages))?;
    out.line(format_args!("checkpoint_attempts: {}", x.attempts))?;
    out.line(format_args!("staged_pages: {}", x.staged_pages))?;
    out.line(format_args!("checkpoint_us: {}", x.checkpoint_us))?;
    out.line(format_args!("rehearsal_us: {}", x.rehearsal_us))?;
    out.line(format_args!("rehearsal_core_us: {}", x.rehearsal_core_us))?;
    out.line(format_args!(
        "target_rehearsal_us: {}",
        x.target_rehearsal_us
    ))?;
    out.line(format_args!("verify_pages: {}", x.verify_pages))?;
    out.line(format_args!("units_paid: {}", x.units_paid))?;
    out.line(format_args!("refusal_code: {}", x.refusal))?;
    out.line(format_args!(
        "tracker_used: {}",
        x.tracker_used.map_or("none", |t| t.as_str())
    ))?;
    for (prefix, p) in [("", &x.paging), ("checkpoint_", &x.checkpoint_paging)] {
        out.line(format_args!("{prefix}marked_pages: {}", p.marked_pages))?;
        out.line(format_args!("{prefix}dirty_entries: {}", p.dirty_entries))?;
        out.line(format_args!("{prefix}page_tables: {}", p.page_tables))?;
        out.line(format_args!("{prefix}address_spaces: {}", p.address_spaces))?;
        out.line(format_args!(
            "{prefix}all_marked: {}",
            u8::from(p.all_marked)
        ))?;
    }
    out.line(format_args!("tracker_misses: {}", x.tracker_misses))?;
    out.line(format_args!("unwritten_pages: {}", x.unwritten_pages))?;
    out.line(format_args!("unwritten_misses: {}", x.unwritten_misses))?;
    out.line(format_args!("bandwidth_bytes_per_s: {}", x.bandwidth))?;
    out.line(format_args!("page_rate_pages_per_s: {}", x.page_rate))?;
    out.line(format_args!("dirty_rate_pages_per_s: {}", x.dirty_rate))?;
    out.line(format_args!("throttle_share_bp: {}", x.throttle_share_bp))?;
    out.line(format_args!("throttled_threads: {}", x.throttled_threads))?;
    out.line(format_args!(
        "precopy_end: {}",
        x.precopy_end.map_or("none", |e| e.as_str())
    ))?;
    out.line(format_args!("fenced_packets: {}", crate::fence::dropped()))?;
    out.line(format_args!(
        "expected_downtime_us: {}",
        s.expected_downtime_us
    ))?;
    out.line(format_args!("downtime_fixed_us: {}", x.downtime_fixed_us))?;
    out.line(format_args!("downtime_us: {}", s.downtime_us))?;
    let d = &x.downtime;
    out.line(format_args!("downtime_checkpoint_us: {}", d.checkpoint_us))?;
    out.line(format_args!("downtime_transfer_us: {}", d.transfer_us))?;
    out.line(format_args!("downtime_target_us: {}", d.target_us))?;
    out.line(format_args!("downtime_commit_us: {}", d.commit_us))?;
    out.line(format_args!("downtime_jump_us: {}", d.jump_us))?;
    out.line(format_args!("downtime_resume_us: {}", d.resume_us))?;
    out.line(format_args!("total_ms: {}", s.total_ms))?;
    out.line(format_args!("last_errno: {}", s.last_errno))?;
    out.line(format_args!("last_error: {last_error}"))
}

/// The attribute table.
pub(crate) static ATTRS: [Attr; 13] = [
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
        name: c_str!("auto_converge"),
        mode: 0o644,
        show: Some(auto_converge_show),
        store: Some(auto_converge_store),
    },
    Attr {
        name: c_str!("compress"),
        mode: 0o644,
        show: Some(compress_show),
        store: Some(compress_store),
    },
    Attr {
        name: c_str!("rehearse"),
        mode: 0o644,
        show: Some(rehearse_show),
        store: Some(rehearse_store),
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
    out.line(format_args!(
        "wire {} image {} start_size {} status_size {}",
        crate::proto::wire::VERSION,
        crate::proto::machine::IMAGE_VERSION,
        uapi::StartArgs::SIZE,
        uapi::StatusArgs::SIZE
    ))
}
