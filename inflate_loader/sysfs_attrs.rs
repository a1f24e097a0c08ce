// SPDX-License-Identifier: GPL-2.0

//! The attributes of `/sys/kernel/inflate_loader/` (see
//! `Documentation/ABI/testing/sysfs-kernel-inflate_loader`).

use crate::control::{self, LoaderState};
use crate::crypto::Sha256;
use crate::proto::token::key_id;
use crate::proto::uapi::{self, ControlError, Endpoint, MAX_TOKEN_LEN};
use crate::refuse::refuse;
use crate::sysfs::{Attr, ShowBuf};
use kernel::c_str;
use kernel::prelude::*;

/// Shows the listening endpoint, or `none`.
fn listen_show(out: &mut ShowBuf<'_>) -> Result {
    let ep = control::with(|c| c.listen)?;
    out.endpoint(ep)
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
    // The id tokens name their key by (see proto::token::key_id).
    let id = key_id(&Sha256, &key).ok_or(EINVAL)?;
    control::with(|c| {
        c.key.iter_mut().for_each(|b| *b = 0);
        c.key = key;
        c.key_id = id;
    })
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
    out.line(format_args!("{}", s.as_str()))
}

/// Shows counters as `key: value` lines.
fn stats_show(out: &mut ShowBuf<'_>) -> Result {
    let (s, n, key_set, last_error) =
        control::with(|c| (c.state, c.counters, !c.key.is_empty(), c.last_error))?;
    out.line(format_args!("state: {}", s.as_str()))?;
    out.line(format_args!("key_set: {}", u8::from(key_set)))?;
    out.line(format_args!("pages_granted: {}", n.pages_granted))?;
    out.line(format_args!("pages_paid: {}", n.pages_paid))?;
    out.line(format_args!("pages_used: {}", n.pages_used))?;
    out.line(format_args!("pages_received: {}", n.pages_received))?;
    out.line(format_args!("admitted: {}", n.admitted))?;
    out.line(format_args!("refused: {}", n.refused))?;
    out.line(format_args!("failed: {}", n.failed))?;
    out.line(format_args!("pages_verified: {}", n.pages_verified))?;
    out.line(format_args!("verify_failures: {}", n.verify_failures))?;
    out.line(format_args!("rehearsal_us: {}", n.rehearsal_us))?;
    out.line(format_args!("last_error: {last_error}"))
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
