// SPDX-License-Identifier: GPL-2.0

//! The attributes of `/sys/kernel/inflate_loader/` (see
//! `Documentation/ABI/testing/sysfs-kernel-inflate_loader`).

use crate::control::{self, LoaderState};
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

/// Shows the listening endpoint, or `none`.
fn listen_show(out: &mut ShowBuf<'_>) -> Result {
    match control::with(|c| c.listen)? {
        Some(ep) => {
            let [a, b, c, d] = ep.addr;
            writeln!(out, "{a}.{b}.{c}.{d}:{}", ep.port).map_err(fmt_err)
        }
        None => writeln!(out, "none").map_err(fmt_err),
    }
}

/// Sets the listening endpoint: `a.b.c.d:port`, `0.0.0.0` for any.
fn listen_store(input: &[u8]) -> Result {
    let ep = Endpoint::parse_listen(input).map_err(|e| refuse("listen", e))?;
    let verdict = control::with(|c| {
        if c.state != LoaderState::Idle {
            return Err(ControlError::Busy);
        }
        c.listen = Some(ep);
        Ok(())
    })?;
    verdict.map_err(|e| refuse("listen", e))
}

/// Sets the provider key, written as hexadecimal (16, 24 or 32 bytes).
fn key_store(input: &[u8]) -> Result {
    let mut raw = KVec::from_elem(0u8, MAX_TOKEN_LEN, GFP_KERNEL)?;
    let len = uapi::parse_hex_token(input, &mut raw).map_err(|e| {
        let e = match e {
            ControlError::BadToken | ControlError::TokenTooLong => ControlError::BadKeyLength,
            other => other,
        };
        refuse("key", e)
    })?;
    if !matches!(len, 16 | 24 | 32) {
        return Err(refuse("key", ControlError::BadKeyLength));
    }
    let mut key = KVec::with_capacity(len, GFP_KERNEL)?;
    key.extend_from_slice(&raw[..len], GFP_KERNEL)?;
    // Do not leave key material in the freed scratch buffer.
    raw.iter_mut().for_each(|b| *b = 0);
    control::with(|c| c.key = key)
}

/// `1` starts listening, `0` stops.
fn enable_store(input: &[u8]) -> Result {
    if uapi::parse_bool(input).map_err(|e| refuse("enable", e))? {
        control::enable("enable")
    } else {
        control::disable("enable")
    }
}

/// Shows the state as one word.
fn status_show(out: &mut ShowBuf<'_>) -> Result {
    let s = control::with(|c| c.state)?;
    writeln!(out, "{}", s.as_str()).map_err(fmt_err)
}

/// Shows counters as `key: value` lines.
fn stats_show(out: &mut ShowBuf<'_>) -> Result {
    let (s, n, key_set, last_error) =
        control::with(|c| (c.state, c.counters, !c.key.is_empty(), c.last_error))?;
    (|| -> core::fmt::Result {
        writeln!(out, "state: {}", s.as_str())?;
        writeln!(out, "key_set: {}", u8::from(key_set))?;
        writeln!(out, "pages_granted: {}", n.pages_granted)?;
        writeln!(out, "pages_paid: {}", n.pages_paid)?;
        writeln!(out, "pages_used: {}", n.pages_used)?;
        writeln!(out, "pages_received: {}", n.pages_received)?;
        writeln!(out, "admitted: {}", n.admitted)?;
        writeln!(out, "refused: {}", n.refused)?;
        writeln!(out, "failed: {}", n.failed)?;
        writeln!(out, "last_error: {last_error}")
    })()
    .map_err(fmt_err)
}

/// The attribute table.
pub(crate) static ATTRS: [Attr; 5] = [
    Attr {
        name: c_str!("listen"),
        mode: 0o644,
        show: Some(listen_show),
        store: Some(listen_store),
    },
    Attr {
        name: c_str!("key"),
        mode: 0o200,
        show: None,
        store: Some(key_store),
    },
    Attr {
        name: c_str!("enable"),
        mode: 0o200,
        show: None,
        store: Some(enable_store),
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
];
