// SPDX-License-Identifier: GPL-2.0
//! Replays every input the fuzzer ever found crashing (in
//! `fuzz/regressions/`) and the fuzzer's seeds through the fuzz harness, so
//! that a plain `cargo test` keeps them fixed.

mod support;

#[path = "../fuzz/harness.rs"]
mod harness;

use selfmig_proto::admission::Phase;
use std::path::Path;

#[test]
fn regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") || !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        // A panic here names the input: re-run it with
        // `fuzz/run.sh` or this test to debug.
        eprintln!("replaying {}", path.display());
        harness::run(&data);
        n += 1;
    }
    eprintln!("{n} regression inputs replayed");
}

#[test]
fn seeds_reach_what_they_are_meant_to() {
    let seeds = harness::seeds();
    let get = |name: &str| &seeds.iter().find(|(n, _)| *n == name).unwrap().1;
    let full = harness::run(get("full"));
    assert_eq!(full.phase, Phase::Done, "{full:?}");
    assert_eq!(full.refused, None);
    let unpaid = harness::run(get("unpaid"));
    assert_eq!(unpaid.refused, Some(135), "{unpaid:?}");
    let forged = harness::run(get("forged"));
    assert_eq!(forged.refused, Some(106), "{forged:?}");
    let flipped = harness::run(get("flipped"));
    assert_eq!(flipped.refused, Some(141), "{flipped:?}");
    let raw = harness::run(get("raw"));
    assert_eq!(raw.phase, Phase::Closed, "{raw:?}");
}

#[test]
fn committed_seeds_match_the_harness() {
    // `SELFMIG_WRITE_SEEDS=1 cargo test --test fuzz_regressions` rewrites
    // them after a change to the harness's input format.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, data) in harness::seeds() {
        let path = dir.join(name);
        if std::env::var_os("SELFMIG_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).ok().as_ref(),
            Some(&data),
            "{} is stale: rewrite with SELFMIG_WRITE_SEEDS=1",
            path.display()
        );
    }
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    // A cheap, deterministic stand-in for the fuzzer in every `cargo test`.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in 0..400usize {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        harness::run(&data);
    }
}
