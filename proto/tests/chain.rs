// SPDX-License-Identifier: GPL-2.0
//! Hash-chain payment, the meter, the payer, and the replay set.

mod support;

use selfmig_proto::chain::*;
use selfmig_proto::crypto::Hash256;
use selfmig_proto::replay::{ReplayEntry, ReplayError, ReplaySet};
use selfmig_proto::wire::WireError;
use std::cell::Cell;
use support::*;

/// SHA-256 that counts its calls.
struct Counting(Cell<u64>);

impl Hash256 for Counting {
    fn hash(&self, data: &[u8]) -> [u8; 32] {
        self.0.set(self.0.get() + 1);
        Sha256.hash(data)
    }
}

#[test]
fn links_hash_back_to_the_anchor() {
    let n = 10;
    let anchor = chain_anchor(&Sha256, &SEED, n);
    assert_eq!(chain_link(&Sha256, &SEED, n, 0), Some(anchor));
    assert_eq!(chain_link(&Sha256, &SEED, n, n), Some(SEED));
    assert_eq!(chain_link(&Sha256, &SEED, n, n + 1), None);
    for i in 1..=n {
        let wi = chain_link(&Sha256, &SEED, n, i).unwrap();
        let prev = chain_link(&Sha256, &SEED, n, i - 1).unwrap();
        assert_eq!(Sha256.hash(&wi), prev);
    }
}

#[test]
fn pay_every_link_in_order() {
    let n = 12;
    let mut chain = Chain::new(chain_anchor(&Sha256, &SEED, n), n);
    assert_eq!(chain.paid(), 0);
    for i in 1..=n {
        let link = chain_link(&Sha256, &SEED, n, i).unwrap();
        assert_eq!(chain.pay_next(&Sha256, &link), Ok(i));
        assert_eq!(chain.head(), &link);
    }
    // Spent: no link beyond the chain.
    assert_eq!(
        chain.pay_next(&Sha256, &[0; 32]),
        Err(ChainError::BeyondChain)
    );
}

#[test]
fn skipping_pays_every_unit_up_to_the_link() {
    let n = 12;
    let anchor = chain_anchor(&Sha256, &SEED, n);
    let mut chain = Chain::new(anchor, n);
    let w5 = chain_link(&Sha256, &SEED, n, 5).unwrap();
    assert_eq!(chain.pay(&Sha256, 5, &w5), Ok(5));
    let w12 = chain_link(&Sha256, &SEED, n, 12).unwrap();
    assert_eq!(chain.pay(&Sha256, 12, &w12), Ok(12));
}

#[test]
fn refusals() {
    let n = 12;
    let anchor = chain_anchor(&Sha256, &SEED, n);
    let link = |i| chain_link(&Sha256, &SEED, n, i).unwrap();
    let mut chain = Chain::new(anchor, n);
    // A wrong link, a link claimed at the wrong index.
    assert_eq!(chain.pay(&Sha256, 1, &[1; 32]), Err(ChainError::WrongLink));
    assert_eq!(chain.pay(&Sha256, 1, &link(2)), Err(ChainError::WrongLink));
    assert_eq!(chain.pay(&Sha256, 2, &link(1)), Err(ChainError::WrongLink));
    // The anchor itself pays nothing.
    assert_eq!(chain.pay(&Sha256, 0, &anchor), Err(ChainError::StaleLink));
    // Beyond the chain, even with the seed.
    assert_eq!(
        chain.pay(&Sha256, n + 1, &Sha256.hash(&SEED)),
        Err(ChainError::BeyondChain)
    );
    // Nothing was accepted by the refusals.
    assert_eq!(chain.paid(), 0);
    assert_eq!(chain.head(), &anchor);
    // Out of order: 3 then 2; and the same link twice.
    assert_eq!(chain.pay(&Sha256, 3, &link(3)), Ok(3));
    assert_eq!(chain.pay(&Sha256, 2, &link(2)), Err(ChainError::StaleLink));
    assert_eq!(chain.pay(&Sha256, 3, &link(3)), Err(ChainError::StaleLink));
    assert_eq!(
        chain.pay_next(&Sha256, &link(3)),
        Err(ChainError::WrongLink)
    );
    assert_eq!(chain.pay_next(&Sha256, &link(4)), Ok(4));
    assert!(chain.verify(&Sha256, 6, &link(6)).is_ok());
    assert_eq!(chain.paid(), 4);
}

#[test]
fn verification_costs_one_hash_per_unit() {
    let n = 100;
    let mut chain = Chain::new(chain_anchor(&Sha256, &SEED, n), n);
    let h = Counting(Cell::new(0));
    let w40 = chain_link(&Sha256, &SEED, n, 40).unwrap();
    chain.pay(&h, 40, &w40).unwrap();
    assert_eq!(h.0.get(), 40);
    let w41 = chain_link(&Sha256, &SEED, n, 41).unwrap();
    chain.pay(&h, 41, &w41).unwrap();
    assert_eq!(h.0.get(), 41);
}

#[test]
fn meter_counts_paid_and_used_pages() {
    let mut m = Meter::new(768, 64);
    assert_eq!(m.max_units(), 12);
    assert_eq!(m.paid_pages(), 0);
    assert!(!m.covers(1));
    assert!(!m.covers_index(0));
    assert_eq!(m.use_pages(1), Err(ChainError::Unpaid));
    assert_eq!(m.units_needed(1), Some(1));
    assert_eq!(m.units_needed(65), Some(2));
    assert_eq!(m.units_needed(769), None);
    m.set_paid(1).unwrap();
    assert_eq!(m.paid_pages(), 64);
    assert!(m.covers(64));
    assert!(!m.covers(65));
    assert!(m.covers_index(63));
    assert!(!m.covers_index(64));
    m.use_pages(64).unwrap();
    assert_eq!(m.used(), 64);
    assert_eq!(m.use_pages(1), Err(ChainError::Unpaid));
    assert_eq!(m.used(), 64);
    m.set_paid(12).unwrap();
    assert_eq!(m.paid_pages(), 768);
    m.use_pages(704).unwrap();
    assert_eq!(m.use_pages(1), Err(ChainError::BeyondGrant));
    assert_eq!(m.use_pages(u64::MAX), Err(ChainError::BeyondGrant));
    // Paying less than already paid changes nothing.
    m.set_paid(3).unwrap();
    assert_eq!(m.units_paid(), 12);
}

#[test]
fn meter_refuses_overpayment() {
    // 700 pages in 64-page units: 11 units; the 11th starts inside the
    // grant (at 640) and is capped there.
    let mut m = Meter::new(700, 64);
    assert_eq!(m.max_units(), 11);
    assert_eq!(m.check_payment(11), Ok(()));
    assert_eq!(m.check_payment(12), Err(ChainError::Overpayment));
    assert_eq!(m.set_paid(12), Err(ChainError::Overpayment));
    m.set_paid(11).unwrap();
    assert_eq!(m.paid_pages(), 700);
    // A unit of zero pages is treated as one page.
    let m = Meter::new(10, 0);
    assert_eq!(m.unit_pages(), 1);
    assert_eq!(m.max_units(), 10);
}

#[test]
fn payment_record() {
    let p = Payment {
        index: 7,
        link: [0xab; 32],
    };
    let enc = p.encode();
    assert_eq!(enc.len(), PAYMENT_LEN);
    assert_eq!(Payment::decode(&enc), Ok(p));
    for cut in 0..PAYMENT_LEN {
        assert_eq!(Payment::decode(&enc[..cut]), Err(WireError::Truncated));
    }
    let mut long = enc.to_vec();
    long.push(0);
    assert_eq!(Payment::decode(&long), Err(WireError::TrailingBytes));
    let mut bad = enc;
    bad[5] = 1;
    assert_eq!(Payment::decode(&bad), Err(WireError::BadField));
}

#[test]
fn payer_matches_chain_link_for_every_index() {
    for n in [0u32, 1, 2, 3, 4, 5, 10, 16, 17, 63, 64, 65, 100] {
        let anchor = chain_anchor(&Sha256, &SEED, n);
        let mut storage = vec![[0u8; 32]; Payer::storage_len(n)];
        let mut payer = Payer::new(&Sha256, &SEED, n, &anchor, &mut storage).unwrap();
        assert_eq!(payer.len(), n);
        for i in 1..=n {
            let p = payer.next_link(&Sha256).unwrap();
            assert_eq!(p.index, i);
            assert_eq!(
                Some(p.link),
                chain_link(&Sha256, &SEED, n, i),
                "n {n} i {i}"
            );
        }
        assert_eq!(payer.next_link(&Sha256), None);
        // Random access, backwards too.
        for i in (1..=n).rev() {
            assert_eq!(payer.link(&Sha256, i), chain_link(&Sha256, &SEED, n, i));
        }
        assert_eq!(payer.link(&Sha256, 0), None);
        assert_eq!(payer.link(&Sha256, n + 1), None);
    }
}

#[test]
fn payer_costs_about_two_hashes_per_link() {
    let n = 10_000;
    let anchor = chain_anchor(&Sha256, &SEED, n);
    let mut storage = vec![[0u8; 32]; Payer::storage_len(n)];
    assert_eq!(storage.len(), 200);
    let h = Counting(Cell::new(0));
    let mut payer = Payer::new(&h, &SEED, n, &anchor, &mut storage).unwrap();
    let mut chain = Chain::new(anchor, n);
    while let Some(p) = payer.next_link(&h) {
        chain.pay(&Sha256, p.index, &p.link).unwrap();
    }
    assert_eq!(chain.paid(), n);
    assert!(h.0.get() <= 2 * u64::from(n), "{} hashes", h.0.get());
}

#[test]
fn payer_pays_to_and_checks_its_seed() {
    let n = 30;
    let anchor = chain_anchor(&Sha256, &SEED, n);
    let mut storage = vec![[0u8; 32]; Payer::storage_len(n)];
    let mut payer = Payer::new(&Sha256, &SEED, n, &anchor, &mut storage).unwrap();
    let mut chain = Chain::new(anchor, n);
    let p = payer.pay_to(&Sha256, 9).unwrap();
    assert_eq!(chain.pay(&Sha256, p.index, &p.link), Ok(9));
    assert_eq!(payer.next_index(), 10);
    assert_eq!(payer.pay_to(&Sha256, 9), None);
    let p = payer.next_link(&Sha256).unwrap();
    assert_eq!(chain.pay(&Sha256, p.index, &p.link), Ok(10));
    drop(payer);
    let mut small = vec![[0u8; 32]; Payer::storage_len(n) - 1];
    assert!(matches!(
        Payer::new(&Sha256, &SEED, n, &anchor, &mut small),
        Err(PayerError::NoSpace)
    ));
    assert!(matches!(
        Payer::new(&Sha256, &[8; 32], n, &anchor, &mut storage),
        Err(PayerError::WrongSeed)
    ));
    assert!(matches!(
        Payer::new(&Sha256, &SEED, n - 1, &anchor, &mut storage),
        Err(PayerError::WrongSeed)
    ));
}

#[test]
fn payer_scrubs_its_storage() {
    let n = 9;
    let anchor = chain_anchor(&Sha256, &SEED, n);
    let mut storage = vec![[0u8; 32]; Payer::storage_len(n)];
    let mut payer = Payer::new(&Sha256, &SEED, n, &anchor, &mut storage).unwrap();
    payer.next_link(&Sha256).unwrap();
    drop(payer);
    assert!(storage.iter().all(|l| *l == [0; 32]));
}

#[test]
fn chain_error_codes() {
    use ChainError::*;
    for (e, code) in [
        (WrongLink, 131),
        (StaleLink, 132),
        (BeyondChain, 133),
        (Overpayment, 134),
        (Unpaid, 135),
        (BeyondGrant, 136),
    ] {
        assert_eq!(e.code(), code);
        assert!(!e.as_str().is_empty());
        assert!(e.errno() > 0);
    }
}

#[test]
fn replay_set_refuses_reuse() {
    let mut slots = [ReplayEntry::EMPTY; 4];
    let mut set = ReplaySet::new(&mut slots[..]);
    assert_eq!(set.capacity(), 4);
    assert!(set.is_empty());
    set.observe(100);
    set.insert(&[1; 16], 200).unwrap();
    assert!(set.contains(&[1; 16]));
    assert!(!set.contains(&[2; 16]));
    assert_eq!(set.check(&[1; 16]), Err(ReplayError::Replayed));
    assert_eq!(set.insert(&[1; 16], 300), Err(ReplayError::Replayed));
    assert_eq!(set.len(), 1);
}

#[test]
fn replay_set_refuses_when_full_rather_than_forget() {
    let mut slots = [ReplayEntry::EMPTY; 3];
    let mut set = ReplaySet::new(&mut slots[..]);
    set.observe(100);
    for i in 0..3u8 {
        set.insert(&[i; 16], 150 + u64::from(i)).unwrap();
    }
    assert_eq!(set.check(&[9; 16]), Err(ReplayError::Full));
    assert_eq!(set.insert(&[9; 16], 500), Err(ReplayError::Full));
    // Every remembered id is still refused as a replay.
    for i in 0..3u8 {
        assert_eq!(set.check(&[i; 16]), Err(ReplayError::Replayed));
    }
    // Once one has expired its slot is reused.
    assert_eq!(set.observe(150), 150);
    set.insert(&[9; 16], 500).unwrap();
    assert!(set.contains(&[9; 16]));
    assert!(!set.contains(&[0; 16]));
    // The clock never goes back: an earlier "now" cannot revive anything.
    assert_eq!(set.observe(10), 150);
    assert_eq!(set.insert(&[10; 16], 600), Err(ReplayError::Full));
}

#[test]
fn replay_set_of_no_slots_admits_nothing() {
    let mut slots: [ReplayEntry; 0] = [];
    let mut set = ReplaySet::new(&mut slots[..]);
    assert_eq!(set.insert(&[1; 16], 10), Err(ReplayError::Full));
}
