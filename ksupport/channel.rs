// SPDX-License-Identifier: GPL-2.0

//! Records over a TCP stream: framing, bounds and record counters.
//!
//! A received header is checked (magic, version, kind, length bound,
//! counter) before a single payload byte is read, and the payload must fit
//! the caller's buffer, so the peer cannot make us read or allocate more
//! than we chose.

use crate::errno::errno;
use crate::failure::{Context, Failure};
use crate::proto::uapi;
use crate::proto::wire::{Header, RecordKind, Sequence, HEADER_LEN};
use crate::socket::TcpStream;
use kernel::prelude::*;

/// One side of a migration stream.
pub(crate) struct Channel<'a> {
    stream: &'a TcpStream,
    tx: Sequence,
    rx: Sequence,
    /// Bytes sent so far, headers included.
    pub(crate) bytes_sent: u64,
    /// Bytes received so far, headers included.
    pub(crate) bytes_received: u64,
}

impl<'a> Channel<'a> {
    /// A channel over `stream`, both counters at zero.
    pub(crate) fn new(stream: &'a TcpStream) -> Self {
        Self {
            stream,
            tx: Sequence::new(),
            rx: Sequence::new(),
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    /// The counter for the next outgoing record, for records built in
    /// place (page batches); consumes it.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.tx.take()
    }

    /// Sends a record built in place, header included.
    pub(crate) fn send_built(&mut self, record: &[u8]) -> Result<(), Failure> {
        self.stream
            .send_all(record)
            .context("sending to the peer failed")?;
        self.bytes_sent += record.len() as u64;
        Ok(())
    }

    /// Sends a record with a small payload.
    pub(crate) fn send(&mut self, kind: RecordKind, payload: &[u8]) -> Result<(), Failure> {
        if payload.len() > kind.max_payload() {
            return Err(Failure::new(EINVAL, "record payload too long"));
        }
        let mut hdr = [0u8; HEADER_LEN];
        Header {
            kind,
            len: payload.len() as u32,
            seq: self.next_seq(),
        }
        .encode(&mut hdr);
        self.send_built(&hdr)?;
        if !payload.is_empty() {
            self.send_built(payload)?;
        }
        Ok(())
    }

    /// Receives one record into `buf`; returns its header and payload.
    pub(crate) fn recv<'b>(&mut self, buf: &'b mut [u8]) -> Result<(Header, &'b [u8]), Failure> {
        let mut raw = [0u8; HEADER_LEN];
        self.stream
            .recv_exact(&mut raw)
            .context("receiving from the peer failed")?;
        let header =
            Header::decode(&raw).map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
        self.rx
            .check(&header)
            .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
        let len = header.len as usize;
        if len > buf.len() {
            return Err(Failure::new(
                errno(uapi::EMSGSIZE),
                "record larger than expected here",
            ));
        }
        let payload = &mut buf[..len];
        self.stream
            .recv_exact(payload)
            .context("receiving from the peer failed")?;
        self.bytes_received += (HEADER_LEN + len) as u64;
        Ok((header, payload))
    }
}
