// SPDX-License-Identifier: GPL-2.0

//! The connection to the loader: sending, and reading what it answers.
//!
//! The loader answers only when it refuses, accepts the token or accepts
//! the hello; a refusal is followed by its closing the connection. A
//! misbehaving record is sent header first ([`Conn::send_staged`]): the
//! loader judges a header before it reads a payload byte, so when it
//! refuses at the header the payload is never sent. That is the loader's
//! promise checked from outside, and it keeps the connection clean (a
//! socket closed with unread bytes resets instead of closing).

use crate::crypto::Gcm;
use selfmig_proto::admission::TokenReply;
use selfmig_proto::seal::{decode_sealed_header, Direction, Opener, KIND_SEALED};
use selfmig_proto::wire::{Header, RecordKind, HEADER_LEN};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// What the loader did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A plaintext token reply (code 0: accepted).
    TokenReply(TokenReply),
    /// A sealed record that opened: its kind and plaintext.
    Sealed(RecordKind, Vec<u8>),
    /// The connection ended (closed or reset) before a whole record.
    Closed,
    /// Nothing arrived in time.
    Silent,
    /// Something that is not a loader's record.
    Garbled(&'static str),
}

/// One connection to the loader.
pub struct Conn {
    stream: TcpStream,
    opener: Opener,
    grace: Duration,
    timeout: Duration,
}

impl Conn {
    /// Connects to `to`. Answers are awaited for `timeout`; after a
    /// misbehaving header, a refusal for `grace`.
    pub fn connect(to: &SocketAddr, grace: Duration, timeout: Duration) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(to, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Self {
            stream,
            opener: Opener::new(Direction::TargetToSource),
            grace,
            timeout,
        })
    }

    /// Sends `bytes` whole.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a record's header, then its payload only if the loader has
    /// not answered within the grace period; then waits the grace period
    /// again. Returns whether the loader has answered (or closed). A send
    /// the loader cut short counts as answered: its answer is read next.
    pub fn send_staged(&mut self, record: &[u8]) -> std::io::Result<bool> {
        let (header, payload) = record.split_at(HEADER_LEN.min(record.len()));
        for part in [header, payload] {
            if part.is_empty() {
                continue;
            }
            match self.stream.write_all(part) {
                Ok(()) => {}
                Err(e) if is_reset(&e) => return Ok(true),
                Err(e) => return Err(e),
            }
            if self.answered_within(self.grace)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether anything (bytes or the end of the stream) arrives within
    /// `wait`.
    fn answered_within(&mut self, wait: Duration) -> std::io::Result<bool> {
        self.stream.set_read_timeout(Some(wait))?;
        let mut byte = [0u8; 1];
        match self.stream.peek(&mut byte) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if is_reset(&e) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Ends the sending side (the loader sees the stream end).
    pub fn close_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads the loader's next record and opens it if sealed (`aead`: the
    /// stream's cipher, once keyed).
    pub fn answer(&mut self, aead: Option<&Gcm>) -> Answer {
        if self.stream.set_read_timeout(Some(self.timeout)).is_err() {
            return Answer::Closed;
        }
        let mut raw = [0u8; HEADER_LEN];
        if let Err(a) = self.read_exact(&mut raw) {
            return a;
        }
        let sealed = u16::from_le_bytes([raw[6], raw[7]]) & KIND_SEALED != 0;
        if !sealed {
            let Ok(header) = Header::decode(&raw) else {
                return Answer::Garbled("a plaintext record with a bad header");
            };
            if header.kind != RecordKind::TokenReply {
                return Answer::Garbled("a plaintext record other than a token reply");
            }
            let mut payload = vec![0u8; header.len as usize];
            if let Err(a) = self.read_exact(&mut payload) {
                return a;
            }
            return TokenReply::decode(&payload).map_or(
                Answer::Garbled("a malformed token reply"),
                Answer::TokenReply,
            );
        }
        let Ok(header) = decode_sealed_header(&raw) else {
            return Answer::Garbled("a sealed record with a bad header");
        };
        let mut payload = vec![0u8; header.len as usize];
        if let Err(a) = self.read_exact(&mut payload) {
            return a;
        }
        let Some(aead) = aead else {
            return Answer::Garbled("a sealed record before the stream was keyed");
        };
        match self.opener.open(aead, &raw, &mut payload) {
            Ok((h, plain)) => Answer::Sealed(h.kind, plain.to_vec()),
            Err(_) => Answer::Garbled("a sealed record that fails to open"),
        }
    }

    /// Reads exactly `buf`, or says how the stream ended.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Answer> {
        self.stream.read_exact(buf).map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Answer::Silent,
            _ => Answer::Closed,
        })
    }
}

/// Whether `e` says the loader reset or closed the connection.
fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}
