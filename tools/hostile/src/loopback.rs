// SPDX-License-Identifier: GPL-2.0

//! Every scenario against `proto`'s own `Admission`, served on a loopback
//! socket the way `inflate_loader/receiver.rs` serves it: read a header,
//! `begin`, read exactly the payload it names, `finish`, send the reply,
//! close on a refusal or a failed read. What the live test
//! (`hostile.sh`) expects of the kernel, checked here without a guest.

use crate::crypto::{random, Gcm, Sha256};
use crate::scenario::{run, Outcome, Report, Scenario, Target, ALL};
use selfmig_proto::admission::{Admission, Reason, Reply};
use selfmig_proto::bundle::{MintSpec, TokenBundle};
use selfmig_proto::crypto::{SessionAead, TAG_LEN};
use selfmig_proto::machine::{MachineDesc, RamRange};
use selfmig_proto::replay::{ReplayEntry, ReplaySet};
use selfmig_proto::token::key_id;
use selfmig_proto::wire::{HEADER_LEN, MAX_PAYLOAD};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The test loader's admission.
type Adm<'a> = Admission<'a, Gcm, Gcm, Sha256, Vec<ReplayEntry>>;

const PROVIDER_KEY: [u8; 32] = [0x42; 32];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The loader's machine: two ranges with a hole, as a QEMU guest has.
fn machine() -> MachineDesc {
    let mut d = MachineDesc::new(2, 5, [1, 2, 3, 4]);
    for (start_pfn, nr_pages) in [(1, 0x9e), (0x100, 0x700)] {
        d.push_range(RamRange {
            start_pfn,
            nr_pages,
        })
        .unwrap();
    }
    d
}

/// A fresh token for the loader's machine.
fn mint() -> TokenBundle {
    let provider = Gcm::with_key(&PROVIDER_KEY).unwrap();
    let spec = MintSpec {
        key_id: key_id(&Sha256, &PROVIDER_KEY).unwrap(),
        id: random().unwrap(),
        expiry: now() + 3600,
        granted_pages: 0x800,
        granted_vcpus: 2,
        unit_pages: 64,
        price_per_unit: 1,
        chain_len: 32,
        session_key: random().unwrap(),
        seed: random().unwrap(),
    };
    TokenBundle::mint(&provider, &Sha256, &random().unwrap(), &spec).unwrap()
}

/// Serves one connection; returns the refusal, or `None` when a read
/// failed (the kernel's "receiving from the source failed"), and how many
/// bytes the source sent after the refusal (until it hung up).
fn serve(mut stream: TcpStream) -> (Option<Reason>, usize) {
    let refusal = judge(&mut stream);
    let mut rest = Vec::new();
    if refusal.is_some() {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.read_to_end(&mut rest);
    }
    (refusal, rest.len())
}

/// Judges records until a refusal or a failed read.
fn judge(stream: &mut TcpStream) -> Option<Reason> {
    let provider = Gcm::with_key(&PROVIDER_KEY).unwrap();
    let local = machine();
    let mut replay = ReplaySet::new(vec![ReplayEntry::EMPTY; 8]);
    let mut frames = vec![0u64; Adm::frame_words(&local)];
    let key_id = key_id(&Sha256, &PROVIDER_KEY).unwrap();
    let salt = random().unwrap();
    let mut adm = Adm::new(
        &provider,
        &Sha256,
        &mut replay,
        &mut frames,
        local,
        key_id,
        now(),
        salt,
    )
    .unwrap();
    let mut reply = Reply::new();
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + TAG_LEN];
    loop {
        let mut raw = [0u8; HEADER_LEN];
        stream.read_exact(&mut raw).ok()?;
        let len = match adm.begin(&raw, &mut reply) {
            Ok(len) => len,
            Err(r) => {
                let _ = stream.write_all(reply.as_bytes());
                return Some(r);
            }
        };
        stream.read_exact(&mut buf[..len]).ok()?;
        let result = adm.finish(&mut buf[..len], &mut reply).map(|_| ());
        let _ = stream.write_all(reply.as_bytes());
        if let Err(r) = result {
            return Some(r);
        }
    }
}

/// Plays `scenario` against a test loader: the tool's report and the
/// loader's refusal.
fn against_loader(scenario: Scenario, machine: MachineDesc) -> (Report, (Option<Reason>, usize)) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let loader = std::thread::spawn(move || serve(listener.accept().unwrap().0));
    let target = Target {
        to,
        bundle: Some(mint()),
        machine: Some(machine),
        grace: Duration::from_millis(300),
        timeout: Duration::from_secs(10),
    };
    let report = run(scenario, &target);
    (report, loader.join().unwrap())
}

/// What the loader logs (and `stats` shows as `last_error`) for each
/// scenario: the texts `hostile.sh` looks for.
fn loader_text(scenario: Scenario) -> Option<&'static str> {
    Some(match scenario {
        Scenario::Oversize => "record too long for its kind",
        Scenario::OutOfRange => "page outside the RAM map",
        Scenario::ReplayRecord => "record out of order",
        Scenario::Reorder => "record failed authentication",
        Scenario::Plaintext => "plaintext record after admission",
        Scenario::Truncated => return None,
        Scenario::GarbageFirst => "bad magic",
        // Refused by the kernel's decompressor, after admission accepted
        // the batch: `hostile.sh` checks it against a live loader.
        Scenario::BadLz4 | Scenario::PatchUnsent => return None,
    })
}

#[test]
fn every_scenario_is_refused_as_expected() {
    for scenario in ALL
        .into_iter()
        .filter(|&s| !matches!(s, Scenario::BadLz4 | Scenario::PatchUnsent))
    {
        let (report, (refusal, trailing)) = against_loader(scenario, machine());
        assert!(report.passed(scenario), "{scenario:?}: {report:?}");
        assert_eq!(
            refusal.map(|r| r.as_str()),
            loader_text(scenario),
            "{scenario:?}"
        );
        // Refused at a header, the payload never followed; refused at a
        // record, nothing followed.
        assert_eq!(trailing, 0, "{scenario:?}");
    }
}

#[test]
fn a_hello_for_another_machine_stops_before_misbehaving() {
    let mut other = MachineDesc::new(2, 5, [0; 4]);
    other
        .push_range(RamRange {
            start_pfn: 1,
            nr_pages: 0x9e,
        })
        .unwrap();
    let (report, (refusal, _)) = against_loader(Scenario::OutOfRange, other);
    assert_eq!(report.outcome, Outcome::Refused(126));
    assert!(!report.misbehaved && !report.passed(Scenario::OutOfRange));
    assert_eq!(refusal.map(|r| r.code()), Some(126));
}
