// SPDX-License-Identifier: GPL-2.0

//! The source's end of a migration stream: framing, record counters,
//! sealing, and paying for pages before they are sent.
//!
//! The token record goes out in plaintext and the target's token reply
//! comes back in plaintext; from then on ([`Channel::seal_with`]) every
//! record either way is sealed under the connection's stream key
//! (`proto::seal`), and a record that fails to open ends the migration.
//! A received header is checked before a single payload byte is read, and
//! nothing larger than this side expects is read at all.
//!
//! The channel also carries the [`Wallet`]: before a page batch with pages
//! of frames never sent before goes out, it sends the payment that covers
//! them, as the target refuses unpaid pages.

use crate::crypto::{Gcm, Sha256};
use crate::errno::errno;
use crate::failure::{Context, Failure};
use crate::proto::admission::Reason;
use crate::proto::chain::{Meter, Payer, EDQUOT};
use crate::proto::crypto::TAG_LEN;
use crate::proto::seal::{decode_sealed_header, Direction, Opener, Sealer};
use crate::proto::uapi;
use crate::proto::wire::{
    decode_abort, encode_record, Header, RecordKind, Sequence, HEADER_LEN, MAX_PAYLOAD,
};
use crate::socket::TcpStream;
use kernel::prelude::*;

/// Largest record this side receives (a hello reply, a token reply, an
/// abort; `Complete`), sealed.
const RX_CAP: usize = 64;

/// The failure for a target's refusal with reason `code`.
pub(crate) fn refusal(code: u32) -> Failure {
    let reason = match Reason::from_code(code) {
        Some(r) => r.as_str(),
        None => "target refused (unknown reason)",
    };
    crate::control::update(|_, x| x.refusal = code);
    Failure::new(errno(uapi::EREMOTEIO), reason)
}

/// Pays for pages as they are first sent.
pub(crate) struct Wallet<'s> {
    payer: Payer<'s>,
    meter: Meter,
    /// Units paid so far.
    pub(crate) units: u32,
}

impl<'s> Wallet<'s> {
    /// A wallet spending `payer`'s chain on a grant measured by `meter`.
    pub(crate) fn new(payer: Payer<'s>, meter: Meter) -> Self {
        Self {
            payer,
            meter,
            units: 0,
        }
    }
}

/// The stream's sealing state.
struct Sealing {
    aead: Gcm,
    sealer: Sealer,
    opener: Opener,
}

/// One migration stream, source side.
pub(crate) struct Channel<'a, 's> {
    stream: &'a TcpStream,
    tx: Sequence,
    rx: Sequence,
    sealing: Option<Sealing>,
    wallet: Option<Wallet<'s>>,
    /// Where small records are built and sealed.
    scratch: KVVec<u8>,
    rx_buf: [u8; RX_CAP],
    /// Bytes sent so far, headers included.
    pub(crate) bytes_sent: u64,
}

impl<'a, 's> Channel<'a, 's> {
    /// A plaintext channel over `stream`, both counters at zero.
    pub(crate) fn new(stream: &'a TcpStream) -> Result<Self, Failure> {
        Ok(Self {
            stream,
            tx: Sequence::new(),
            rx: Sequence::new(),
            sealing: None,
            wallet: None,
            scratch: KVVec::from_elem(0u8, HEADER_LEN + MAX_PAYLOAD + TAG_LEN, GFP_KERNEL)
                .map_err(|_| ENOMEM)
                .context("cannot allocate the record buffer")?,
            rx_buf: [0; RX_CAP],
            bytes_sent: 0,
        })
    }

    /// Seals every record from now on with `aead` (the stream key).
    pub(crate) fn seal_with(&mut self, aead: Gcm) {
        self.sealing = Some(Sealing {
            aead,
            sealer: Sealer::new(Direction::SourceToTarget),
            opener: Opener::new(Direction::TargetToSource),
        });
    }

    /// Pays for pages from now on with `wallet`.
    pub(crate) fn pay_with(&mut self, wallet: Wallet<'s>) {
        self.wallet = Some(wallet);
    }

    /// The counter for the next outgoing record, for records built in
    /// place (page batches); consumes it.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.tx.take()
    }

    /// Before sending more: if the target has said something (it only
    /// speaks unasked to refuse), the refusal, as a failure.
    fn check_refusal(&mut self) -> Result<(), Failure> {
        if self.sealing.is_none() || !self.stream.has_data() {
            return Ok(());
        }
        match self.recv()? {
            (h, payload) if h.kind == RecordKind::Abort => {
                let code = decode_abort(payload)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                Err(refusal(code))
            }
            _ => Err(Failure::new(
                errno(uapi::EPROTO),
                "target sent an unexpected record",
            )),
        }
    }

    /// Sends the plaintext record `record[..len]` built in place in
    /// `record`, sealing it first (in place: `record` has [`TAG_LEN`]
    /// bytes of room after it) once the stream is sealed. If the target
    /// refused the stream meanwhile, fails with its reason instead.
    pub(crate) fn send_built(&mut self, record: &mut [u8], len: usize) -> Result<(), Failure> {
        self.check_refusal()?;
        let len = match &mut self.sealing {
            Some(s) => s
                .sealer
                .seal(&s.aead, record, len)
                .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?,
            None => len,
        };
        let wire = record
            .get(..len)
            .ok_or_else(|| Failure::new(EINVAL, "record longer than its buffer"))?;
        if let Err(e) = self.stream.send_all(wire) {
            // A refusal may be waiting behind the broken connection.
            self.check_refusal()?;
            return Err(Failure::new(e, "sending to the peer failed"));
        }
        self.bytes_sent += len as u64;
        Ok(())
    }

    /// Sends a record with `payload`.
    pub(crate) fn send(&mut self, kind: RecordKind, payload: &[u8]) -> Result<(), Failure> {
        let seq = self.tx.take();
        let mut scratch = core::mem::replace(&mut self.scratch, KVVec::new());
        let result = encode_record(kind, seq, payload, &mut scratch)
            .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))
            .and_then(|len| self.send_built(&mut scratch, len));
        self.scratch = scratch;
        result
    }

    /// Sends the payment covering `new_frames` more distinct frames, if
    /// they are not paid for yet.
    pub(crate) fn pay_for(&mut self, new_frames: u64) -> Result<(), Failure> {
        let Some(wallet) = self.wallet.as_mut() else {
            return Ok(());
        };
        let needed = wallet.meter.units_needed(new_frames).ok_or(Failure::new(
            errno(EDQUOT),
            "the guest uses more pages than the token grants",
        ))?;
        let payment = if needed > wallet.units {
            let payment = wallet.payer.pay_to(&Sha256, needed).ok_or(Failure::new(
                errno(EDQUOT),
                "the token's payment chain is spent",
            ))?;
            wallet
                .meter
                .set_paid(needed)
                .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
            wallet.units = needed;
            Some(payment)
        } else {
            None
        };
        wallet
            .meter
            .use_pages(new_frames)
            .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
        match payment {
            Some(p) => self.send(RecordKind::Payment, &p.encode()),
            None => Ok(()),
        }
    }

    /// Units paid so far.
    pub(crate) fn units_paid(&self) -> u32 {
        self.wallet.as_ref().map_or(0, |w| w.units)
    }

    /// Receives one record; returns its header (plaintext length) and
    /// payload.
    pub(crate) fn recv(&mut self) -> Result<(Header, &[u8]), Failure> {
        let mut raw = [0u8; HEADER_LEN];
        self.stream
            .recv_exact(&mut raw)
            .context("receiving from the peer failed")?;
        let header = match &self.sealing {
            Some(_) => decode_sealed_header(&raw)
                .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?,
            None => Header::decode(&raw).map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?,
        };
        self.rx
            .check(&header)
            .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
        let len = header.len as usize;
        if len > RX_CAP {
            return Err(Failure::new(
                errno(uapi::EMSGSIZE),
                "record larger than expected here",
            ));
        }
        let payload = &mut self.rx_buf[..len];
        self.stream
            .recv_exact(payload)
            .context("receiving from the peer failed")?;
        match &mut self.sealing {
            Some(s) => {
                let (header, plain) = s
                    .opener
                    .open(&s.aead, &raw, payload)
                    .map_err(|e| Failure::new(errno(e.errno()), e.as_str()))?;
                Ok((header, plain))
            }
            None => Ok((header, payload)),
        }
    }
}
