// SPDX-License-Identifier: GPL-2.0

//! The JSON documents `selfmig` prints: the `migrate` report, the `status`
//! snapshot, and the `token mint` and `token inspect` summaries.
//!
//! Each is documented field by field in `Documentation/selfmig/cli.rst`,
//! and a test checks that every documented key, and no other, is there
//! with the documented type. Adding a key is compatible; removing or
//! retyping one bumps [`SCHEMA_VERSION`].

use crate::errno;
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::request::{StartRequest, Tracker};
use crate::sysfs::Stats;
use selfmig_proto::uapi::StatusArgs;
use serde::Serialize;
use serde_json::{Map, Value};

/// Version of every document's schema.
pub const SCHEMA_VERSION: u32 = 1;

/// An error in a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    /// Positive errno, or null when the error has none.
    pub errno: Option<i32>,
    /// Symbolic errno name (`ECONNREFUSED`), or null.
    pub name: Option<&'static str>,
    /// What went wrong.
    pub message: String,
    /// What to do next, or null.
    pub hint: Option<String>,
}

impl From<&CliError> for ErrorInfo {
    fn from(e: &CliError) -> Self {
        Self {
            errno: e.errno,
            name: e.errno.and_then(errno::name),
            message: e.message.clone(),
            hint: e.hint.clone(),
        }
    }
}

/// Where a migration's downtime went, in microseconds (the module's
/// `downtime_*_us` stats; see `Documentation/selfmig/design.rst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DowntimePhases {
    /// Source: devices frozen, state saved, local resume.
    pub checkpoint: u64,
    /// Source: staged pages, hashes and CPU context sent.
    pub transfer: u64,
    /// Target's verification and preparation, as the source waited.
    pub target: u64,
    /// Source: from the target's `Complete` to sending the commit.
    pub commit: u64,
    /// Target: from the commit to the jump.
    pub jump: u64,
    /// Image on the target: trampoline and resume.
    pub resume: u64,
}

impl DowntimePhases {
    /// The phases in `stats`, if every one is there.
    pub fn from_stats(stats: &Stats) -> Option<Self> {
        let g = |k: &str| stats.get_u64(&format!("downtime_{k}_us"));
        Some(Self {
            checkpoint: g("checkpoint")?,
            transfer: g("transfer")?,
            target: g("target")?,
            commit: g("commit")?,
            jump: g("jump")?,
            resume: g("resume")?,
        })
    }
}

/// The report of `selfmig migrate`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrateReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `migrated`, `refused`, `aborted`, `failed`, `environment` or `usage`.
    pub outcome: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// The last state read from the module, or null if none started.
    pub state: Option<&'static str>,
    /// The target endpoint, `a.b.c.d:port`.
    pub target: String,
    /// The tracker requested.
    pub tracker: Tracker,
    /// The tracker the module used (`stats`: `tracker_used`), or null if
    /// unknown.
    pub tracker_used: Option<String>,
    /// Whether verification was requested.
    pub verify: bool,
    /// The downtime target in effect, in milliseconds.
    pub max_downtime_ms: u32,
    /// Pre-copy rounds run.
    pub rounds: u32,
    /// Pages sent.
    pub pages_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Pages sent as zero markers, or null if `stats` was unreadable.
    pub zero_pages: Option<u64>,
    /// Pages dirtied in the last round.
    pub dirty_pages: u64,
    /// Measured downtime in microseconds (0 unless migrated).
    pub downtime_us: u64,
    /// Where the downtime went; null unless migrated.
    pub downtime_phases_us: Option<DowntimePhases>,
    /// Pages the target checked against their checkpoint hash; null
    /// without `--verify` or unless migrated.
    pub verified_pages: Option<u64>,
    /// Duration of the migration in milliseconds, per the module.
    pub total_ms: u64,
    /// Why it did not migrate, or null.
    pub error: Option<ErrorInfo>,
}

impl MigrateReport {
    /// The report for `req`, which ended as `class` with the last status
    /// `status` (None if nothing started), `stats` read at the end, and
    /// `error` unless it migrated.
    pub fn new(
        req: &StartRequest,
        class: ExitClass,
        status: Option<&StatusArgs>,
        stats: Option<&Stats>,
        error: Option<&CliError>,
    ) -> Self {
        let s = status.copied().unwrap_or_else(StatusArgs::idle);
        Self {
            schema_version: SCHEMA_VERSION,
            outcome: match class {
                ExitClass::Success => "migrated",
                other => other.as_str(),
            },
            exit_code: class.code(),
            state: status.map(|s| s.state.as_str()),
            target: req.target.to_string(),
            tracker: req.tracker,
            tracker_used: stats
                .and_then(|x| x.get("tracker_used"))
                .filter(|t| *t != "none")
                .map(str::to_string),
            verify: req.verify,
            max_downtime_ms: req.effective_max_downtime_ms(),
            // `round` is the index of the last round: round 0 counts.
            rounds: if s.pages_sent > 0 { s.round + 1 } else { 0 },
            pages_sent: s.pages_sent,
            bytes_sent: s.bytes_sent,
            zero_pages: stats.and_then(|x| x.get_u64("zero_pages")),
            dirty_pages: s.dirty_pages,
            downtime_us: s.downtime_us,
            downtime_phases_us: stats
                .filter(|_| class == ExitClass::Success)
                .and_then(DowntimePhases::from_stats),
            verified_pages: stats
                .filter(|_| class == ExitClass::Success && req.verify)
                .and_then(|x| x.get_u64("verify_pages")),
            total_ms: s.total_ms,
            error: error.map(ErrorInfo::from),
        }
    }
}

/// `self_migrate` in a `status` snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    /// The `status` word, or null if unreadable.
    pub state: Option<String>,
    /// The `target` setting, or null when unset.
    pub target: Option<String>,
    /// The `max_downtime_ms` setting.
    pub max_downtime_ms: Option<u64>,
    /// The `verify` setting.
    pub verify: Option<bool>,
    /// The `tracker` setting.
    pub tracker: Option<String>,
    /// The `version` line.
    pub version: Option<String>,
    /// Every `stats` line: decimal values as numbers, others as strings.
    pub stats: Map<String, Value>,
}

/// `inflate_loader` in a `status` snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoaderStatus {
    /// The `status` word, or null if unreadable.
    pub state: Option<String>,
    /// The `listen` setting, or null when unset.
    pub listen: Option<String>,
    /// Every `stats` line: decimal values as numbers, others as strings.
    pub stats: Map<String, Value>,
}

/// The snapshot `selfmig status --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `self_migrate`, or null if not loaded.
    pub self_migrate: Option<SourceStatus>,
    /// `inflate_loader`, or null if not loaded.
    pub inflate_loader: Option<LoaderStatus>,
}

/// A minted bundle in the `token mint` summary. Never the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MintedBundle {
    /// The token's id, 32 hex digits.
    pub id: String,
    /// The provider key's id.
    pub key_id: u16,
    /// The provider key's size in bits (128, 192 or 256).
    pub key_bits: u32,
    /// Pages granted.
    pub granted_pages: u64,
    /// vCPUs granted.
    pub granted_vcpus: u32,
    /// Pages one link buys.
    pub unit_pages: u32,
    /// Links in the chain.
    pub chain_len: u32,
    /// Links it takes to pay for the whole grant.
    pub units_for_grant: u64,
    /// Price of one unit.
    pub price_per_unit: u64,
    /// Unix time from which the token is refused.
    pub expiry: u64,
}

/// The summary `selfmig token mint --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenMintReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The exit class's name.
    pub outcome: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// Where the bundle was written.
    pub out: String,
    /// What was minted, or null if nothing was.
    pub bundle: Option<MintedBundle>,
    /// Why nothing was minted, or null.
    pub error: Option<ErrorInfo>,
}

/// A bundle's plaintext grant in the `token inspect` summary. Never the
/// secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleInfo {
    /// The id of the provider key the token says it is sealed under.
    pub key_id: u16,
    /// Pages granted.
    pub granted_pages: u64,
    /// vCPUs granted.
    pub granted_vcpus: u32,
    /// Pages one link buys.
    pub unit_pages: u32,
    /// Links in the chain.
    pub chain_len: u32,
    /// Links it takes to pay for the whole grant.
    pub units_for_grant: u64,
    /// Unix time from which the token is refused.
    pub expiry: u64,
    /// Whether that time has come.
    pub expired: bool,
}

/// What opening the sealed token with the provider key showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// `verified`, `mismatch`, `forged`, `other-key` or `malformed`.
    pub result: &'static str,
    /// The bundle fields the sealed token disagrees with.
    pub mismatches: Vec<&'static str>,
    /// The token's id (32 hex digits) if it opened.
    pub id: Option<String>,
    /// The sealed price of one unit if it opened.
    pub price_per_unit: Option<u64>,
}

/// The summary `selfmig token inspect --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInspectReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The exit class's name.
    pub outcome: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// The bundle file.
    pub file: String,
    /// The plaintext grant, or null if the file holds no bundle.
    pub bundle: Option<BundleInfo>,
    /// The check of the sealed token, or null without `--key`.
    pub verification: Option<Verification>,
    /// Why the bundle is refused, or null.
    pub error: Option<ErrorInfo>,
}

/// `stats` as a JSON object.
pub fn stats_object(stats: &Stats) -> Map<String, Value> {
    stats
        .entries()
        .iter()
        .map(|(k, v)| {
            let value = match v.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(v.as_str()),
            };
            (k.clone(), value)
        })
        .collect()
}

/// `doc` as one line of JSON.
pub fn to_line<T: Serialize>(doc: &T) -> String {
    // The documents hold only strings, numbers, booleans and maps with
    // string keys, which always serialise.
    serde_json::to_string(doc).expect("JSON document serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use selfmig_proto::uapi::{Endpoint, State};
    use std::collections::BTreeMap;

    fn request() -> StartRequest {
        StartRequest {
            target: Endpoint {
                addr: [10, 77, 0, 3],
                port: 7000,
            },
            token: vec![0xaa],
            max_downtime_ms: None,
            verify: true,
            tracker: Tracker::Hash,
            no_auto_converge: false,
            no_compress: false,
            no_rehearse: false,
        }
    }

    /// `stats` lines of a verified migration, as the module prints them.
    const MIGRATED_STATS: &str = "zero_pages: 3012\nverify_pages: 41466\ntracker_used: hash\n\
        downtime_us: 42117\ndowntime_checkpoint_us: 9000\ndowntime_transfer_us: 6000\n\
        downtime_target_us: 12000\ndowntime_commit_us: 17\ndowntime_jump_us: 5000\n\
        downtime_resume_us: 10100\n";

    fn migrated() -> StatusArgs {
        StatusArgs {
            state: State::Migrated,
            round: 4,
            pages_sent: 131_072,
            bytes_sent: 537_285_632,
            dirty_pages: 211,
            downtime_us: 42_117,
            total_ms: 8_250,
            ..StatusArgs::idle()
        }
    }

    /// The documented keys and types of one schema in cli.rst, read
    /// between `.. json-schema: NAME` and `.. end-json-schema`.
    fn documented(name: &str) -> BTreeMap<String, String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../Documentation/selfmig/cli.rst"
        );
        let doc = std::fs::read_to_string(path).expect("Documentation/selfmig/cli.rst");
        let start = format!(".. json-schema: {name}");
        let body = doc
            .split_once(&start)
            .unwrap_or_else(|| panic!("no `{start}` in cli.rst"))
            .1
            .split_once(".. end-json-schema")
            .expect("end marker")
            .0;
        let mut keys = BTreeMap::new();
        for line in body.lines() {
            // A row starts with its key in the first column; continuation
            // lines are indented.
            let Some(rest) = line.strip_prefix("``") else {
                continue;
            };
            let (key, rest) = rest.split_once("``").expect("closing ``");
            let ty = rest.split_whitespace().collect::<Vec<_>>();
            let ty = if ty.len() >= 3 && ty[1] == "or" && ty[2] == "null" {
                format!("{} or null", ty[0])
            } else {
                ty[0].to_string()
            };
            assert!(keys.insert(key.to_string(), ty).is_none(), "{key} twice");
        }
        assert!(!keys.is_empty());
        keys
    }

    /// The JSON type name of `v`.
    fn type_of(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Flattens objects into `a.b` keys, keeping the objects themselves,
    /// except below `open` keys whose contents are not fixed.
    fn flatten(prefix: &str, v: &Value, open: &[&str], out: &mut BTreeMap<String, Value>) {
        if let Value::Object(m) = v {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(key.clone(), v.clone());
                if !open.contains(&key.as_str()) {
                    flatten(&key, v, open, out);
                }
            }
        }
    }

    /// Checks that `docs` have exactly the documented keys of `name`
    /// (together) with the documented types (each).
    fn check(name: &str, docs: &[Value], open: &[&str]) {
        let schema = documented(name);
        let mut seen = std::collections::BTreeSet::new();
        for doc in docs {
            let mut flat = BTreeMap::new();
            flatten("", doc, open, &mut flat);
            for (key, v) in &flat {
                let ty = schema
                    .get(key)
                    .unwrap_or_else(|| panic!("{name}: `{key}` is not documented"));
                let t = type_of(v);
                let ok = ty == t
                    || (t == "null" && ty.ends_with(" or null"))
                    || ty.starts_with(&format!("{t} "));
                assert!(ok, "{name}: `{key}` is {t}, documented as {ty}");
                seen.insert(key.clone());
            }
            // Non-nullable top-level keys are always present.
            for (key, ty) in &schema {
                if !key.contains('.') && !ty.ends_with("or null") {
                    assert!(flat.contains_key(key), "{name}: `{key}` missing");
                }
            }
        }
        for key in schema.keys() {
            assert!(
                seen.contains(key),
                "{name}: documented `{key}` never produced"
            );
        }
    }

    #[test]
    fn migrate_report_matches_the_documented_schema() {
        let req = request();
        let ok = MigrateReport::new(
            &req,
            ExitClass::Success,
            Some(&migrated()),
            Some(&Stats::parse(MIGRATED_STATS)),
            None,
        );
        let failed_status = StatusArgs {
            state: State::Failed,
            last_errno: 104,
            ..migrated()
        };
        let err =
            errno::migration_failure(false, 104, Some("connection reset"), 10, "10.77.0.3:7000");
        let failed = MigrateReport::new(&req, err.class, Some(&failed_status), None, Some(&err));
        let env = CliError::new(ExitClass::Environment, "self_migrate is not loaded");
        let not_started = MigrateReport::new(&req, env.class, None, None, Some(&env));
        let docs: Vec<Value> = [ok, failed, not_started]
            .iter()
            .map(|r| serde_json::from_str(&to_line(r)).unwrap())
            .collect();
        check("migrate", &docs, &[]);
    }

    #[test]
    fn migrate_report_values() {
        let r = MigrateReport::new(
            &request(),
            ExitClass::Success,
            Some(&migrated()),
            Some(&Stats::parse(MIGRATED_STATS)),
            None,
        );
        let v: Value = serde_json::from_str(&to_line(&r)).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["outcome"], "migrated");
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["state"], "migrated");
        assert_eq!(v["target"], "10.77.0.3:7000");
        assert_eq!(v["tracker"], "hash");
        assert_eq!(v["verify"], true);
        assert_eq!(v["max_downtime_ms"], 50);
        assert_eq!(v["rounds"], 5);
        assert_eq!(v["tracker_used"], "hash");
        assert_eq!(v["pages_sent"], 131_072);
        assert_eq!(v["bytes_sent"], 537_285_632u64);
        assert_eq!(v["zero_pages"], 3012);
        assert_eq!(v["downtime_us"], 42_117);
        assert_eq!(v["downtime_phases_us"]["checkpoint"], 9_000);
        assert_eq!(v["downtime_phases_us"]["resume"], 10_100);
        assert_eq!(v["verified_pages"], 41_466);
        assert_eq!(v["total_ms"], 8_250);
        assert_eq!(v["error"], Value::Null);
        // One line: one JSON object per run.
        assert!(!to_line(&r).contains('\n'));
    }

    #[test]
    fn migrate_report_error() {
        let err = errno::migration_failure(false, 111, None, 0, "10.77.0.3:7000");
        let r = MigrateReport::new(&request(), err.class, None, None, Some(&err));
        let v: Value = serde_json::from_str(&to_line(&r)).unwrap();
        assert_eq!(v["outcome"], "refused");
        assert_eq!(v["exit_code"], 3);
        assert_eq!(v["state"], Value::Null);
        assert_eq!(v["error"]["errno"], 111);
        assert_eq!(v["error"]["name"], "ECONNREFUSED");
        assert!(v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("receive --listen"));
    }

    #[test]
    fn status_report_matches_the_documented_schema() {
        let stats = Stats::parse("state: idle\nround: 0\nlast_error: none\n");
        let both = StatusReport {
            schema_version: SCHEMA_VERSION,
            self_migrate: Some(SourceStatus {
                state: Some("idle".into()),
                target: Some("10.77.0.3:7000".into()),
                max_downtime_ms: Some(50),
                verify: Some(false),
                tracker: Some("paging".into()),
                version: Some("wire 4 image 1 start_size 64 status_size 80".into()),
                stats: stats_object(&stats),
            }),
            inflate_loader: Some(LoaderStatus {
                state: Some("listening".into()),
                listen: Some("0.0.0.0:7000".into()),
                stats: stats_object(&stats),
            }),
        };
        let neither = StatusReport {
            schema_version: SCHEMA_VERSION,
            self_migrate: Some(SourceStatus {
                state: None,
                target: None,
                max_downtime_ms: None,
                verify: None,
                tracker: None,
                version: None,
                stats: Map::new(),
            }),
            inflate_loader: None,
        };
        let docs: Vec<Value> = [both, neither]
            .iter()
            .map(|r| serde_json::from_str(&to_line(r)).unwrap())
            .collect();
        check(
            "status",
            &docs,
            &["self_migrate.stats", "inflate_loader.stats"],
        );
    }

    fn bundle_info() -> BundleInfo {
        BundleInfo {
            key_id: 0x1a2b,
            granted_pages: 262_144,
            granted_vcpus: 2,
            unit_pages: 16_384,
            chain_len: 16,
            units_for_grant: 16,
            expiry: 1_800_003_600,
            expired: false,
        }
    }

    #[test]
    fn token_mint_report_matches_the_documented_schema() {
        let ok = TokenMintReport {
            schema_version: SCHEMA_VERSION,
            outcome: "success",
            exit_code: 0,
            out: "/root/guest.bundle".into(),
            bundle: Some(MintedBundle {
                id: "00".repeat(16),
                key_id: 0x1a2b,
                key_bits: 256,
                granted_pages: 262_144,
                granted_vcpus: 2,
                unit_pages: 16_384,
                chain_len: 16,
                units_for_grant: 16,
                price_per_unit: 0,
                expiry: 1_800_003_600,
            }),
            error: None,
        };
        let err = CliError::new(ExitClass::Usage, "cannot read key file k").with_errno(2);
        let failed = TokenMintReport {
            schema_version: SCHEMA_VERSION,
            outcome: "usage",
            exit_code: 2,
            out: "/root/guest.bundle".into(),
            bundle: None,
            error: Some(ErrorInfo::from(&err)),
        };
        let docs: Vec<Value> = [ok, failed]
            .iter()
            .map(|r| serde_json::from_str(&to_line(r)).unwrap())
            .collect();
        check("token-mint", &docs, &[]);
    }

    #[test]
    fn token_inspect_report_matches_the_documented_schema() {
        let verified = TokenInspectReport {
            schema_version: SCHEMA_VERSION,
            outcome: "success",
            exit_code: 0,
            file: "b.hex".into(),
            bundle: Some(bundle_info()),
            verification: Some(Verification {
                result: "verified",
                mismatches: vec![],
                id: Some("ab".repeat(16)),
                price_per_unit: Some(5),
            }),
            error: None,
        };
        let err = CliError::new(ExitClass::Refused, "forged").with_errno(129);
        let forged = TokenInspectReport {
            schema_version: SCHEMA_VERSION,
            outcome: "refused",
            exit_code: 3,
            file: "b.hex".into(),
            bundle: Some(bundle_info()),
            verification: Some(Verification {
                result: "forged",
                mismatches: vec![],
                id: None,
                price_per_unit: None,
            }),
            error: Some(ErrorInfo::from(&err)),
        };
        let unchecked = TokenInspectReport {
            schema_version: SCHEMA_VERSION,
            outcome: "success",
            exit_code: 0,
            file: "b.hex".into(),
            bundle: Some(bundle_info()),
            verification: None,
            error: None,
        };
        let none = TokenInspectReport {
            schema_version: SCHEMA_VERSION,
            outcome: "refused",
            exit_code: 3,
            file: "b.hex".into(),
            bundle: None,
            verification: None,
            error: Some(ErrorInfo::from(&err)),
        };
        let docs: Vec<Value> = [verified, forged, unchecked, none]
            .iter()
            .map(|r| serde_json::from_str(&to_line(r)).unwrap())
            .collect();
        check("token-inspect", &docs, &[]);
    }

    #[test]
    fn stats_numbers_and_strings() {
        let m = stats_object(&Stats::parse(
            "round: 3\nlast_error: target refused: busy\n",
        ));
        assert_eq!(m["round"], 3);
        assert_eq!(m["last_error"], "target refused: busy");
    }
}
