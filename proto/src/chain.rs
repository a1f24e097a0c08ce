// SPDX-License-Identifier: GPL-2.0

//! Pay-as-you-go with a hash chain (the Laundromat model), and the meter
//! that turns payment into pages.
//!
//! The provider draws a secret `seed` and computes the chain
//! `w_n = seed, w_(i-1) = H(w_i)`, so the anchor `w_0 = H^n(seed)`; the anchor
//! and `n` go into the sealed token, the seed to the payer. To pay for the
//! `i`-th unit the payer reveals `w_i`, which the loader checks by hashing
//! it back to the last link it accepted. Nobody can compute `w_i` from the
//! links already revealed (that would invert `H`), so a revealed link is
//! proof that the holder of the seed paid `i` units; the provider bills by
//! the highest link its loader accepted.
//!
//! A payment may skip links: revealing `w_j` pays every unit up to `j` at a
//! cost of `j - paid` hashes to the loader. A link at or below what was
//! paid is stale and refused; so is one beyond the chain, and one that buys
//! a unit starting past the grant (overpayment).
//!
//! The payer computes `w_i = H^(n-i)(seed)`: [`chain_link`] does it in
//! `n - i` hashes (quadratic over a whole chain: fine for the short chains
//! of 64 MiB units), [`Payer`] in about two hashes per link amortised, with
//! `2 * ceil(sqrt(n))` checkpoints in caller storage.

use super::crypto::{ct_eq, scrub, Hash256, HASH_LEN};
use super::wire::{exact_len, WireError};

/// Length of a chain link.
pub const LINK_LEN: usize = HASH_LEN;

/// A chain link (a SHA-256 digest).
pub type Link = [u8; LINK_LEN];

/// Length of a payment record's payload: index, zero word, link.
pub const PAYMENT_LEN: usize = 8 + LINK_LEN;

// The wire format bounds the record by this length.
const _: () = assert!(PAYMENT_LEN == super::wire::PAYMENT_PAYLOAD_LEN);

/// Why a payment or a page was refused.
///
/// The numeric codes are stable and share admission's number space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ChainError {
    /// The link does not hash to the last accepted one.
    WrongLink = 131,
    /// The link's index is at or below what was already paid (a replayed
    /// or out-of-order link).
    StaleLink = 132,
    /// The link's index is beyond the chain's length.
    BeyondChain = 133,
    /// The payment buys a unit that starts beyond the grant.
    Overpayment = 134,
    /// A page beyond what has been paid.
    Unpaid = 135,
    /// A page beyond what the token granted.
    BeyondGrant = 136,
}

impl ChainError {
    /// The stable reason code.
    pub fn code(&self) -> u32 {
        *self as u32
    }

    /// A short, stable description for logs and status files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChainError::WrongLink => "payment link does not verify",
            ChainError::StaleLink => "payment link already spent or out of order",
            ChainError::BeyondChain => "payment link beyond the chain",
            ChainError::Overpayment => "payment beyond the grant",
            ChainError::Unpaid => "page not paid for",
            ChainError::BeyondGrant => "page beyond the grant",
        }
    }

    /// The (positive) errno a kernel caller reports.
    pub fn errno(&self) -> i32 {
        match self {
            ChainError::WrongLink | ChainError::StaleLink | ChainError::BeyondChain => {
                super::uapi::EBADMSG
            }
            ChainError::Overpayment | ChainError::Unpaid | ChainError::BeyondGrant => EDQUOT,
        }
    }
}

/// Quota exceeded (`include/uapi/asm-generic/errno.h`): pages or payment
/// beyond the grant, or pages beyond the payment.
pub const EDQUOT: i32 = 122;

/// `w_i = H^(n-i)(seed)`, the `i`-th link of a chain of length `n` (`w_0`
/// is the anchor, `w_n` the seed). `None` when `i > n`. Costs `n - i`
/// hashes.
pub fn chain_link<H: Hash256>(hash: &H, seed: &Link, n: u32, i: u32) -> Option<Link> {
    if i > n {
        return None;
    }
    let mut w = *seed;
    for _ in i..n {
        w = hash.hash(&w);
    }
    Some(w)
}

/// The anchor `w_0 = H^n(seed)` of a chain of length `n`.
pub fn chain_anchor<H: Hash256>(hash: &H, seed: &Link, n: u32) -> Link {
    let mut w = *seed;
    for _ in 0..n {
        w = hash.hash(&w);
    }
    w
}

/// The verifier's side of a chain: the last accepted link and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    head: Link,
    len: u32,
    paid: u32,
}

impl Chain {
    /// A chain anchored at `anchor` with `len` links, nothing paid.
    pub const fn new(anchor: Link, len: u32) -> Self {
        Self {
            head: anchor,
            len,
            paid: 0,
        }
    }

    /// Units paid so far (the index of the last accepted link).
    pub fn paid(&self) -> u32 {
        self.paid
    }

    /// The chain's length.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the chain has no links at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last accepted link (the anchor before any payment).
    pub fn head(&self) -> &Link {
        &self.head
    }

    /// Checks a payment of `link` as `w_index` without accepting it. Costs
    /// `index - paid` hashes.
    pub fn verify<H: Hash256>(&self, hash: &H, index: u32, link: &Link) -> Result<(), ChainError> {
        if index <= self.paid {
            return Err(ChainError::StaleLink);
        }
        if index > self.len {
            return Err(ChainError::BeyondChain);
        }
        let mut w = *link;
        for _ in self.paid..index {
            w = hash.hash(&w);
        }
        if !ct_eq(&w, &self.head) {
            return Err(ChainError::WrongLink);
        }
        Ok(())
    }

    /// Accepts `link` as `w_index`, paying every unit up to `index`;
    /// returns the units now paid.
    pub fn pay<H: Hash256>(
        &mut self,
        hash: &H,
        index: u32,
        link: &Link,
    ) -> Result<u32, ChainError> {
        self.verify(hash, index, link)?;
        self.head = *link;
        self.paid = index;
        Ok(index)
    }

    /// Accepts `link` as the next link (one unit).
    pub fn pay_next<H: Hash256>(&mut self, hash: &H, link: &Link) -> Result<u32, ChainError> {
        let index = self.paid.checked_add(1).ok_or(ChainError::BeyondChain)?;
        self.pay(hash, index, link)
    }
}

/// Counts pages against a grant and a payment.
///
/// Both sides keep one: the loader to refuse unpaid pages, the source to
/// know when to pay. "Pages" are distinct page frames of the image: a frame
/// sent again in a later pre-copy round costs nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    granted_pages: u64,
    unit_pages: u64,
    units: u32,
    used: u64,
}

impl Meter {
    /// A meter for a grant of `granted_pages` sold in units of `unit_pages`
    /// (at least 1), nothing paid or used.
    pub fn new(granted_pages: u64, unit_pages: u32) -> Self {
        Self {
            granted_pages,
            unit_pages: u64::from(unit_pages.max(1)),
            units: 0,
            used: 0,
        }
    }

    /// Pages granted.
    pub fn granted_pages(&self) -> u64 {
        self.granted_pages
    }

    /// Pages one unit buys.
    pub fn unit_pages(&self) -> u64 {
        self.unit_pages
    }

    /// Units paid.
    pub fn units_paid(&self) -> u32 {
        self.units
    }

    /// Pages used so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The most units worth paying: `ceil(granted / unit)`.
    pub fn max_units(&self) -> u64 {
        div_up(self.granted_pages, self.unit_pages)
    }

    /// Pages paid for, capped at the grant.
    pub fn paid_pages(&self) -> u64 {
        u64::from(self.units)
            .saturating_mul(self.unit_pages)
            .min(self.granted_pages)
    }

    /// Checks that paying up to `units` in total buys nothing beyond the
    /// grant: every unit must start inside it.
    pub fn check_payment(&self, units: u32) -> Result<(), ChainError> {
        if u64::from(units) > self.max_units() {
            return Err(ChainError::Overpayment);
        }
        Ok(())
    }

    /// Records that `units` are paid in total (after [`Chain::pay`]).
    pub fn set_paid(&mut self, units: u32) -> Result<(), ChainError> {
        self.check_payment(units)?;
        self.units = self.units.max(units);
        Ok(())
    }

    /// Whether the page with 0-based use index `index` (the `index + 1`-th
    /// distinct page) is paid for.
    pub fn covers_index(&self, index: u64) -> bool {
        index < self.paid_pages()
    }

    /// Whether `count` more pages are paid for.
    pub fn covers(&self, count: u64) -> bool {
        self.used
            .checked_add(count)
            .is_some_and(|total| total <= self.paid_pages())
    }

    /// Units to pay, in total, before `count` more pages can be used; `None`
    /// if they would exceed the grant.
    pub fn units_needed(&self, count: u64) -> Option<u32> {
        let total = self.used.checked_add(count)?;
        if total > self.granted_pages {
            return None;
        }
        u32::try_from(div_up(total, self.unit_pages)).ok()
    }

    /// Uses `count` more pages, refusing any beyond the grant or the
    /// payment.
    pub fn use_pages(&mut self, count: u64) -> Result<(), ChainError> {
        let total = self
            .used
            .checked_add(count)
            .ok_or(ChainError::BeyondGrant)?;
        if total > self.granted_pages {
            return Err(ChainError::BeyondGrant);
        }
        if total > self.paid_pages() {
            return Err(ChainError::Unpaid);
        }
        self.used = total;
        Ok(())
    }
}

/// The payload of a payment record: reveals `link` as `w_index`.
///
/// ```text
/// offset size field
///      0    4 index   u32 little-endian, > units already paid
///      4    4 zero
///      8   32 link
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    /// Which link this is.
    pub index: u32,
    /// The link, `w_index`.
    pub link: Link,
}

impl Payment {
    /// Encodes the payload.
    pub fn encode(&self) -> [u8; PAYMENT_LEN] {
        let mut out = [0u8; PAYMENT_LEN];
        out[0..4].copy_from_slice(&self.index.to_le_bytes());
        out[8..].copy_from_slice(&self.link);
        out
    }

    /// Decodes a payload of exactly [`PAYMENT_LEN`] bytes with a zero pad
    /// word.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        exact_len(payload, PAYMENT_LEN)?;
        if payload[4..8] != [0; 4] {
            return Err(WireError::BadField);
        }
        let link: Link = payload
            .get(8..8 + LINK_LEN)
            .and_then(|l| l.try_into().ok())
            .ok_or(WireError::Truncated)?;
        Ok(Self {
            index: u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]),
            link,
        })
    }
}

/// Why a [`Payer`] cannot be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayerError {
    /// The storage is shorter than [`Payer::storage_len`].
    NoSpace,
    /// The computed anchor is not the one expected (wrong seed or length).
    WrongSeed,
}

/// `ceil(n / d)`, and `n` for a zero `d` (which callers rule out): a
/// division that cannot panic, so no panic path reaches the kernel build.
fn div_up(n: u64, d: u64) -> u64 {
    match d {
        0 => n,
        d => n.div_ceil(d),
    }
}

/// Smallest `s` with `s * s >= n`.
fn ceil_sqrt(n: u32) -> u32 {
    let mut s = 0u32;
    while u64::from(s) * u64::from(s) < u64::from(n) {
        s += 1;
    }
    s
}

/// The payer's side of a chain: produces links in any order at a bounded
/// cost, keeping checkpoints in caller storage.
///
/// With `s = ceil(sqrt(n))`, it keeps `w` at every `s`-th index (the top of
/// each segment of `s` links) and the links of one segment at a time. A
/// link costs nothing inside the current segment and at most `s` hashes to
/// refill another; paying a whole chain in order costs about `2n` hashes
/// (`n` to set up, `n` to refill), against `n^2 / 2` for [`chain_link`]
/// each time. Every cached link (the top checkpoint is the seed) is zeroed on
/// drop.
pub struct Payer<'s> {
    len: u32,
    step: u32,
    next: u32,
    /// `ceil(len / step)` checkpoints, then `step` links of one segment.
    storage: &'s mut [Link],
    /// Segment whose links are cached, if any.
    segment: Option<u32>,
}

impl core::fmt::Debug for Payer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Payer")
            .field("len", &self.len)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Drop for Payer<'_> {
    fn drop(&mut self) {
        for link in self.storage.iter_mut() {
            scrub(link);
        }
    }
}

impl<'s> Payer<'s> {
    /// Links of storage a chain of length `len` needs.
    pub fn storage_len(len: u32) -> usize {
        let step = ceil_sqrt(len).max(1);
        (len.div_ceil(step) + step) as usize
    }

    /// Sets up a payer for the chain of length `len` from `seed`, checking
    /// that it hashes to `anchor`. Costs `len` hashes.
    pub fn new<H: Hash256>(
        hash: &H,
        seed: &Link,
        len: u32,
        anchor: &Link,
        storage: &'s mut [Link],
    ) -> Result<Self, PayerError> {
        if storage.len() < Self::storage_len(len) {
            return Err(PayerError::NoSpace);
        }
        let step = ceil_sqrt(len).max(1);
        // Walk from the seed (w_len) down to w_0, keeping the top of each
        // segment: segment k holds indices k*step+1 ..= min((k+1)*step, len).
        let mut w = *seed;
        let mut i = len;
        loop {
            // (`%` rather than `is_multiple_of`: this file is also built by
            // the kernel's older minimum Rust.)
            #[allow(clippy::manual_is_multiple_of)]
            let top = i == len || i % step == 0;
            if i > 0 && top {
                storage[((i - 1) / step) as usize] = w;
            }
            if i == 0 {
                break;
            }
            w = hash.hash(&w);
            i -= 1;
        }
        if !ct_eq(&w, anchor) {
            return Err(PayerError::WrongSeed);
        }
        Ok(Self {
            len,
            step,
            next: 1,
            storage,
            segment: None,
        })
    }

    /// The chain's length.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the chain has no links.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of the link [`Payer::next_link`] returns next.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// `w_index`, for `1 <= index <= len`. Costs at most `ceil(sqrt(len))`
    /// hashes.
    pub fn link<H: Hash256>(&mut self, hash: &H, index: u32) -> Option<Link> {
        if index == 0 || index > self.len {
            return None;
        }
        let seg = (index - 1) / self.step;
        let checkpoints = self.len.div_ceil(self.step) as usize;
        let first = seg * self.step + 1;
        if self.segment != Some(seg) {
            let top = ((seg + 1) * self.step).min(self.len);
            let mut w = self.storage[seg as usize];
            let mut i = top;
            loop {
                self.storage[checkpoints + (i - first) as usize] = w;
                if i == first {
                    break;
                }
                w = hash.hash(&w);
                i -= 1;
            }
            self.segment = Some(seg);
        }
        Some(self.storage[checkpoints + (index - first) as usize])
    }

    /// The next link in order and its index, or `None` once the chain is
    /// spent.
    pub fn next_link<H: Hash256>(&mut self, hash: &H) -> Option<Payment> {
        let index = self.next;
        let link = self.link(hash, index)?;
        self.next += 1;
        Some(Payment { index, link })
    }

    /// A payment bringing the total paid to `units` (skipping links), and
    /// moves past it.
    pub fn pay_to<H: Hash256>(&mut self, hash: &H, units: u32) -> Option<Payment> {
        if units < self.next {
            return None;
        }
        let link = self.link(hash, units)?;
        self.next = units + 1;
        Some(Payment { index: units, link })
    }
}
