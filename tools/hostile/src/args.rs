// SPDX-License-Identifier: GPL-2.0

//! The command line, and the token and machine description it names.

use crate::iomem;
use crate::scenario::{Scenario, ALL};
use selfmig_proto::bundle::TokenBundle;
use selfmig_proto::machine::{MachineDesc, RamRange, CPU_FEATURE_WORDS};
use selfmig_proto::uapi::{parse_hex_token, MAX_TOKEN_LEN};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Usage text.
pub fn usage() -> String {
    let names: Vec<&str> = ALL.iter().map(|s| s.name()).collect();
    format!(
        "usage: selfmig-hostile --to IP:PORT --scenario NAME [--token FILE]
                       [--ram-map START:PAGES[,START:PAGES...] | --iomem FILE]
                       [--vcpus N] [--paging-levels 4|5] [--cpu-features W0,W1,W2,W3]

Plays a misbehaving source against an inflate_loader, one scenario per run,
and prints 'scenario=NAME reply=TEXT code=N'. Exit status: 0 if the loader
refused the expected way, 1 if not, 2 for a usage or input error.

  --scenario NAME     {}
  --token FILE        token bundle in hex, as 'selfmig token mint' writes it
                      (single use; every scenario but garbage-first needs one)
  --ram-map LIST      the target's RAM map in frames (decimal or 0x hex)
  --iomem FILE        or a copy of the target's /proc/iomem (read as root)
  --vcpus N           the target's possible CPUs (nr_cpu_ids; default 1)
  --paging-levels L   4, or 5 if the target runs 5-level paging (default 4)
  --cpu-features W..  the hello's CPUID words (default 0: a subset of any CPU)",
        names.join(", ")
    )
}

/// Where the RAM map comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ram {
    /// Not given.
    Unset,
    /// `--ram-map`.
    Map(Vec<RamRange>),
    /// `--iomem`.
    Iomem(PathBuf),
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The loader's address.
    pub to: SocketAddr,
    /// What to do.
    pub scenario: Scenario,
    /// The token bundle's file.
    pub token: Option<PathBuf>,
    /// The target's RAM map.
    pub ram: Ram,
    /// The target's vCPU count.
    pub vcpus: u32,
    /// The target's paging depth.
    pub paging_levels: u32,
    /// The CPUID words the hello claims.
    pub cpu_features: [u32; CPU_FEATURE_WORDS],
}

/// A number in decimal or `0x` hex.
fn number(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("'{s}' is not a number"))
}

/// A `u32` in decimal or `0x` hex.
fn number32(s: &str) -> Result<u32, String> {
    u32::try_from(number(s)?).map_err(|_| format!("'{s}' is too large"))
}

/// `START:PAGES[,START:PAGES...]`.
fn ram_map(s: &str) -> Result<Vec<RamRange>, String> {
    s.split(',')
        .map(|pair| {
            let (start, pages) = pair
                .split_once(':')
                .ok_or_else(|| format!("'{pair}' is not START:PAGES"))?;
            Ok(RamRange {
                start_pfn: number(start)?,
                nr_pages: number(pages)?,
            })
        })
        .collect()
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut to = None;
    let mut scenario = None;
    let mut token = None;
    let mut ram = Ram::Unset;
    let (mut vcpus, mut paging_levels, mut cpu_features) = (1, 4, [0; CPU_FEATURE_WORDS]);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--to" => {
                let v = value()?;
                to = Some(
                    v.parse()
                        .map_err(|_| format!("--to '{v}' is not IP:PORT"))?,
                );
            }
            "--scenario" => {
                let v = value()?;
                scenario =
                    Some(Scenario::from_name(&v).ok_or_else(|| format!("no scenario '{v}'"))?);
            }
            "--token" => token = Some(PathBuf::from(value()?)),
            "--ram-map" | "--iomem" if ram != Ram::Unset => {
                return Err("give one of --ram-map and --iomem, once".into())
            }
            "--ram-map" => ram = Ram::Map(ram_map(&value()?)?),
            "--iomem" => ram = Ram::Iomem(PathBuf::from(value()?)),
            "--vcpus" => vcpus = number32(&value()?)?,
            "--paging-levels" => paging_levels = number32(&value()?)?,
            "--cpu-features" => {
                let v = value()?;
                let words = v.split(',').map(number32).collect::<Result<Vec<_>, _>>()?;
                cpu_features = words
                    .try_into()
                    .map_err(|_| format!("--cpu-features needs {CPU_FEATURE_WORDS} words"))?;
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let to = to.ok_or("--to is required")?;
    let scenario = scenario.ok_or("--scenario is required")?;
    if vcpus == 0 || !(paging_levels == 4 || paging_levels == 5) {
        return Err("--vcpus must be at least 1 and --paging-levels 4 or 5".into());
    }
    if scenario.needs_admission() && (token.is_none() || ram == Ram::Unset) {
        return Err(format!(
            "{} needs --token and --ram-map or --iomem",
            scenario.name()
        ));
    }
    Ok(Args {
        to,
        scenario,
        token,
        ram,
        vcpus,
        paging_levels,
        cpu_features,
    })
}

/// Reads a file, naming it in the error.
fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Args {
    /// The token bundle, if one was named.
    pub fn bundle(&self) -> Result<Option<TokenBundle>, String> {
        let Some(path) = &self.token else {
            return Ok(None);
        };
        let text = read(path)?;
        let mut raw = [0u8; MAX_TOKEN_LEN];
        let bad = |what: &str| format!("{}: {what}", path.display());
        let len = parse_hex_token(text.as_bytes(), &mut raw).map_err(|e| bad(e.as_str()))?;
        TokenBundle::decode(&raw[..len])
            .map(Some)
            .map_err(|e| bad(e.as_str()))
    }

    /// The target's machine description, if a RAM map was given: what the
    /// loader's `ksupport/machine.rs` builds for itself.
    pub fn machine(&self) -> Result<Option<MachineDesc>, String> {
        let ranges = match &self.ram {
            Ram::Unset => return Ok(None),
            Ram::Map(ranges) => ranges.clone(),
            Ram::Iomem(path) => iomem::ram_ranges(&read(path)?)?,
        };
        let mut desc = MachineDesc::new(self.vcpus, self.paging_levels, self.cpu_features);
        for r in ranges {
            desc.push_range(r).map_err(|e| {
                format!(
                    "RAM range {:#x}:{:#x}: {} (ascending, disjoint, nonempty, at most 16)",
                    r.start_pfn,
                    r.nr_pages,
                    e.as_str()
                )
            })?;
        }
        Ok(Some(desc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, String> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn full_command_line() {
        let a = args(
            "--to 10.77.0.3:7000 --scenario out-of-range --token t.hex \
             --ram-map 1:0x9e,0x100:130784 --vcpus 2 --paging-levels 5 \
             --cpu-features 1,0x2,3,4",
        )
        .unwrap();
        assert_eq!(a.to, "10.77.0.3:7000".parse().unwrap());
        assert_eq!(a.scenario, Scenario::OutOfRange);
        assert_eq!(a.token, Some(PathBuf::from("t.hex")));
        assert_eq!(
            (a.vcpus, a.paging_levels, a.cpu_features),
            (2, 5, [1, 2, 3, 4])
        );
        let d = a.machine().unwrap().unwrap();
        assert_eq!(d.ranges().len(), 2);
        assert_eq!(d.total_pages(), 0x9e + 130784);
        assert_eq!((d.vcpus, d.paging_levels), (2, 5));
    }

    #[test]
    fn defaults_and_garbage_needs_nothing() {
        let a = args("--to 127.0.0.1:1 --scenario garbage-first").unwrap();
        assert_eq!((a.vcpus, a.paging_levels, a.cpu_features), (1, 4, [0; 4]));
        assert_eq!(a.ram, Ram::Unset);
        assert_eq!(a.machine().unwrap(), None);
        assert_eq!(a.bundle().unwrap(), None);
    }

    #[test]
    fn refusals() {
        for (line, why) in [
            ("--scenario oversize", "--to"),
            ("--to 1.2.3.4 --scenario oversize", "IP:PORT"),
            ("--to 1.2.3.4:5", "--scenario"),
            ("--to 1.2.3.4:5 --scenario nice", "no scenario"),
            ("--to 1.2.3.4:5 --scenario oversize", "needs --token"),
            (
                "--to 1.2.3.4:5 --scenario oversize --token t",
                "needs --token",
            ),
            (
                "--to 1.2.3.4:5 --scenario garbage-first --vcpus 0",
                "--vcpus",
            ),
            (
                "--to 1.2.3.4:5 --scenario garbage-first --paging-levels 3",
                "4 or 5",
            ),
            (
                "--to 1.2.3.4:5 --scenario garbage-first --ram-map 1",
                "START:PAGES",
            ),
            (
                "--to 1.2.3.4:5 --scenario garbage-first --ram-map 1:x",
                "number",
            ),
            (
                "--to 1.2.3.4:5 --scenario garbage-first --cpu-features 1,2",
                "4 words",
            ),
            (
                "--to 1.2.3.4:5 --scenario garbage-first --iomem a --iomem b",
                "once",
            ),
            ("--to 1.2.3.4:5 --scenario garbage-first --bogus", "unknown"),
            ("--to", "needs a value"),
        ] {
            let err = args(line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn bad_ram_maps_are_refused_when_described() {
        let a = args("--to 1.2.3.4:5 --scenario garbage-first --ram-map 0x100:16,0x10:16").unwrap();
        assert!(a.machine().unwrap_err().contains("ascending"));
    }
}
