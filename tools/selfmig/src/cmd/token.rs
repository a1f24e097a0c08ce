// SPDX-License-Identifier: GPL-2.0

//! `selfmig token mint` and `selfmig token inspect`: the provider mints a
//! token bundle with its key (the sealed token, the secrets the guest needs
//! to seal and pay, and the grant in plaintext); anyone can inspect a
//! bundle's grant, and the provider can check that its sealed token agrees.
//!
//! Bundles are `proto`'s [`TokenBundle`], written as one line of hex, the
//! format `selfmig migrate --token` and sysfs `token` take. `migrate` uses
//! [`describe_token`] to show the grant of the bundle it passes.

use super::fail;
use crate::cli::{InspectOpts, MintOpts, TokenCommand, TokenOpts};
use crate::crypto::{random, Gcm, Secret, Sha256};
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::hexfile;
use crate::json::{
    self, BundleInfo, ErrorInfo, MintedBundle, TokenInspectReport, TokenMintReport, Verification,
    SCHEMA_VERSION,
};
use crate::units;
use selfmig_proto::bundle::{BundleError, MintSpec, TokenBundle};
use selfmig_proto::chain::Link;
use selfmig_proto::crypto::{ct_eq, scrub, KEY_LEN, NONCE_LEN};
use selfmig_proto::token::{
    self, key_id, Token, TokenError, TokenHeader, MAX_CHAIN_LEN, TOKEN_ID_LEN,
};
use selfmig_proto::uapi;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Runs `selfmig token ...`.
pub fn run(opts: &TokenOpts) -> ExitClass {
    let now = now();
    match &opts.command {
        TokenCommand::Mint(o) => mint(o, now),
        TokenCommand::Inspect(o) => inspect(o, now),
    }
}

/// The current unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A usage error saying `msg`.
fn usage(msg: impl Into<String>) -> CliError {
    CliError::new(ExitClass::Usage, msg)
}

/// `grant  262144 pages (1024.0 MiB), 2 vCPUs`.
fn grant_text(pages: u64, vcpus: u32) -> String {
    format!(
        "{pages} pages ({}), {vcpus} vCPU{}",
        units::pages_mib(pages),
        if vcpus == 1 { "" } else { "s" }
    )
}

/// `16 links of 16384 pages (64.0 MiB); 16 pay for the grant`.
fn payment_text(chain_len: u32, unit_pages: u32, units_for_grant: u64) -> String {
    format!(
        "{chain_len} link{} of {unit_pages} pages ({}); {units_for_grant} pay for the grant",
        if chain_len == 1 { "" } else { "s" },
        units::pages_mib(u64::from(unit_pages)),
    )
}

/// A key id as people read it: `0x1a2b`.
fn key_id_text(id: u16) -> String {
    format!("0x{id:04x}")
}

// ---------------------------------------------------------------------------
// mint

/// What `token mint` mints, from the command line: everything but the
/// random values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Pages granted.
    pub granted_pages: u64,
    /// vCPUs granted.
    pub granted_vcpus: u32,
    /// Pages one link buys.
    pub unit_pages: u32,
    /// Links in the chain.
    pub chain_len: u32,
    /// Unix time from which the token is refused.
    pub expiry: u64,
    /// Price of one unit.
    pub price_per_unit: u64,
    /// What to warn about: a chain that pays for less, or more, than the
    /// grant.
    pub warnings: Vec<String>,
}

/// Works out what to mint from `opts` at `now`.
pub fn plan(opts: &MintOpts, now: u64) -> Result<Plan, CliError> {
    let granted_pages = opts.granted_pages();
    let unit_pages = opts.unit_pages();
    let needed = granted_pages.div_ceil(u64::from(unit_pages.max(1)));
    let expiry = match (opts.expires_in, opts.expiry) {
        (Some(secs), _) => now
            .checked_add(secs)
            .ok_or_else(|| usage("--expires-in is too far in the future"))?,
        (None, Some(t)) if t > now => t,
        (None, Some(t)) => {
            return Err(usage(format!(
                "--expiry {t} ({}) is not in the future: the token would be refused at once",
                units::utc(t)
            ))
            .with_hint("give a later unix time, or --expires-in SECONDS"))
        }
        (None, None) => return Err(usage("--expires-in or --expiry is required")),
    };
    let mut warnings = Vec::new();
    let chain_len = match opts.chain_len {
        Some(len) => {
            if u64::from(len) < needed {
                warnings.push(format!(
                    "--chain-len {len} pays for only {} of the {granted_pages} pages granted \
                     ({needed} links of {} MiB would pay for all)",
                    u64::from(len) * u64::from(unit_pages),
                    opts.unit_mib
                ));
            } else if u64::from(len) > needed {
                warnings.push(format!(
                    "--chain-len {len}: only {needed} links can be spent on a grant of \
                     {granted_pages} pages; the loader refuses the rest"
                ));
            }
            len
        }
        None => u32::try_from(needed)
            .ok()
            .filter(|&n| n <= MAX_CHAIN_LEN)
            .ok_or_else(|| {
                usage(format!(
                    "the grant needs {needed} links of {} MiB, more than a chain may have \
                     ({MAX_CHAIN_LEN})",
                    opts.unit_mib
                ))
                .with_hint("raise --unit-mib")
            })?,
    };
    Ok(Plan {
        granted_pages,
        granted_vcpus: opts.vcpus,
        unit_pages,
        chain_len,
        expiry,
        price_per_unit: opts.price,
        warnings,
    })
}

/// The random values of one token: drawn from the OS, or fixed by tests.
#[derive(Clone, PartialEq, Eq)]
pub struct Draws {
    /// The token's id.
    pub id: [u8; TOKEN_ID_LEN],
    /// The sealing nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The session key.
    pub session_key: [u8; KEY_LEN],
    /// The chain's seed.
    pub seed: Link,
}

impl Draws {
    /// Draws every value from the operating system's random generator.
    pub fn from_os() -> Result<Self, CliError> {
        let fail = |e: getrandom::Error| {
            let mut err = CliError::new(
                ExitClass::Environment,
                format!("no random numbers from the operating system: {e}"),
            );
            if let Some(n) = e.raw_os_error() {
                err = err.with_errno(n);
            }
            err
        };
        Ok(Self {
            id: random().map_err(fail)?,
            nonce: random().map_err(fail)?,
            session_key: random().map_err(fail)?,
            seed: random().map_err(fail)?,
        })
    }
}

impl std::fmt::Debug for Draws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Draws")
            .field("id", &self.id)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl Drop for Draws {
    fn drop(&mut self) {
        scrub(&mut self.session_key);
        scrub(&mut self.seed);
    }
}

/// A freshly minted bundle and what the summary says about it.
#[derive(Debug)]
pub struct Minted {
    /// The bundle.
    pub bundle: TokenBundle,
    /// The token's id.
    pub id: [u8; TOKEN_ID_LEN],
    /// The provider key's id.
    pub key_id: u16,
    /// The provider key's size in bits.
    pub key_bits: u32,
    /// Price of one unit.
    pub price_per_unit: u64,
}

impl Minted {
    /// The JSON summary: no secrets.
    pub fn summary(&self) -> MintedBundle {
        let b = &self.bundle;
        MintedBundle {
            id: hexfile::encode(&self.id),
            key_id: self.key_id,
            key_bits: self.key_bits,
            granted_pages: b.granted_pages,
            granted_vcpus: b.granted_vcpus,
            unit_pages: b.unit_pages,
            chain_len: b.chain_len,
            units_for_grant: b.units_for_grant(),
            price_per_unit: self.price_per_unit,
            expiry: b.expiry,
        }
    }

    /// The human summary, for stderr. `out` is where the bundle went
    /// (None: stdout).
    pub fn text(&self, out: Option<&Path>, now: u64) -> String {
        let b = &self.bundle;
        let mut s = match out {
            Some(p) => format!("Minted a token bundle in {} (mode 0600).\n", p.display()),
            None => "Minted a token bundle (on stdout).\n".to_string(),
        };
        let rows = [
            ("token id", hexfile::encode(&self.id)),
            (
                "provider key",
                format!("id {} (AES-{})", key_id_text(self.key_id), self.key_bits),
            ),
            ("grant", grant_text(b.granted_pages, b.granted_vcpus)),
            (
                "payment",
                payment_text(b.chain_len, b.unit_pages, b.units_for_grant()),
            ),
            ("price", format!("{} per unit", self.price_per_unit)),
            (
                "expiry",
                format!("{} ({})", b.expiry, units::expiry(b.expiry, now)),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<13} {v}");
        }
        s += "The bundle holds the token's session key and payment seed: hand it to the \
              guest's owner privately, for `selfmig migrate --token FILE`.\n";
        s
    }
}

/// Mints a bundle under `key` (16, 24 or 32 bytes) as `plan` says, with
/// `draws` for the random values.
pub fn mint_bundle(key: &[u8], plan: &Plan, draws: &Draws) -> Result<Minted, CliError> {
    let bug = |what: &str| {
        CliError::new(ExitClass::Failed, format!("minting failed: {what}"))
            .with_hint("this is a bug in selfmig; please report it")
    };
    let aead = Gcm::new(key).ok_or_else(|| bug("the key is not 16, 24 or 32 bytes"))?;
    let id = key_id(&Sha256, key).ok_or_else(|| bug("no key id"))?;
    let spec = MintSpec {
        key_id: id,
        id: draws.id,
        expiry: plan.expiry,
        granted_pages: plan.granted_pages,
        granted_vcpus: plan.granted_vcpus,
        unit_pages: plan.unit_pages,
        price_per_unit: plan.price_per_unit,
        chain_len: plan.chain_len,
        session_key: draws.session_key,
        seed: draws.seed,
    };
    let bundle = TokenBundle::mint(&aead, &Sha256, &draws.nonce, &spec)
        .map_err(|e| bug(e.as_str()).with_errno(e.errno()))?;
    Ok(Minted {
        bundle,
        id: draws.id,
        key_id: id,
        key_bits: aead.bits(),
        price_per_unit: plan.price_per_unit,
    })
}

/// `bundle` as the text of a bundle file: one line of hex.
pub fn bundle_text(bundle: &TokenBundle) -> Secret {
    let mut raw = bundle.encode();
    let mut text = hexfile::encode(&raw).into_bytes();
    scrub(&mut raw);
    text.push(b'\n');
    Secret::new(text)
}

/// Writes `text` to a new file at `path` with mode 0600; an existing file
/// is overwritten only with `force` (and made 0600).
pub fn write_secret_file(path: &Path, text: &[u8], force: bool) -> Result<(), CliError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| {
        let n = e.raw_os_error().unwrap_or(libc::EIO);
        let err = CliError::new(
            ExitClass::Usage,
            format!(
                "cannot write the bundle to {}: {}",
                path.display(),
                crate::errno::describe(n)
            ),
        )
        .with_errno(n);
        if n == libc::EEXIST {
            err.with_hint("pass --force to overwrite it, or choose another --out")
        } else {
            err.with_hint("pass --out a path in a writable directory")
        }
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(0o600);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o.open(path).map_err(failed)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    f.write_all(text).map_err(failed)?;
    f.sync_all().map_err(failed)
}

/// Mints as `opts` says and writes the bundle.
fn mint_to(opts: &MintOpts, now: u64) -> Result<Minted, CliError> {
    let plan = plan(opts, now)?;
    for w in &plan.warnings {
        eprintln!("selfmig: warning: {w}");
    }
    let key = hexfile::read_key_bytes(&opts.key)?;
    let draws = Draws::from_os()?;
    let minted = mint_bundle(key.bytes(), &plan, &draws)?;
    let text = bundle_text(&minted.bundle);
    match &opts.out {
        Some(path) => write_secret_file(path, text.bytes(), opts.force)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.bytes())
                .and_then(|()| out.flush())
                .map_err(|e| {
                    let n = e.raw_os_error().unwrap_or(libc::EIO);
                    CliError::new(
                        ExitClass::Failed,
                        format!(
                            "cannot write the bundle to stdout: {}",
                            crate::errno::describe(n)
                        ),
                    )
                    .with_errno(n)
                })?;
        }
    }
    Ok(minted)
}

/// Runs `selfmig token mint`.
fn mint(opts: &MintOpts, now: u64) -> ExitClass {
    let result = mint_to(opts, now);
    let class = result
        .as_ref()
        .map_or_else(|e| e.class, |_| ExitClass::Success);
    if opts.json {
        let report = TokenMintReport {
            schema_version: SCHEMA_VERSION,
            outcome: class.as_str(),
            exit_code: class.code(),
            // clap requires --out with --json.
            out: opts
                .out
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            bundle: result.as_ref().ok().map(Minted::summary),
            error: result.as_ref().err().map(ErrorInfo::from),
        };
        println!("{}", json::to_line(&report));
        if let Err(e) = &result {
            e.print();
        }
        return class;
    }
    match result {
        Ok(m) => {
            eprint!("{}", m.text(opts.out.as_deref(), now));
            class
        }
        Err(e) => fail(e),
    }
}

// ---------------------------------------------------------------------------
// inspect

/// What inspecting a bundle found.
#[derive(Debug)]
pub struct Inspection {
    /// The bundle, if the file holds one.
    pub bundle: Option<TokenBundle>,
    /// The check of its sealed token, with `--key`.
    pub verification: Option<Verification>,
    /// The provider key's size in bits, with `--key`.
    pub key_bits: Option<u32>,
    /// Why it is refused, if it is.
    pub error: Option<CliError>,
}

impl Inspection {
    /// Nothing to show but `e`.
    fn failed(e: CliError) -> Self {
        Self {
            bundle: None,
            verification: None,
            key_bits: None,
            error: Some(e),
        }
    }

    /// How the command ends.
    pub fn class(&self) -> ExitClass {
        self.error.as_ref().map_or(ExitClass::Success, |e| e.class)
    }

    /// The plaintext grant for JSON.
    pub fn info(&self, now: u64) -> Option<BundleInfo> {
        self.bundle.as_ref().map(|b| BundleInfo {
            key_id: b.token_header().map_or(0, |h| h.key_id),
            granted_pages: b.granted_pages,
            granted_vcpus: b.granted_vcpus,
            unit_pages: b.unit_pages,
            chain_len: b.chain_len,
            units_for_grant: b.units_for_grant(),
            expiry: b.expiry,
            expired: b.expired(now),
        })
    }

    /// The human report (stdout), if there is a bundle to show.
    pub fn text(&self, file: &Path, now: u64) -> Option<String> {
        let b = self.bundle.as_ref()?;
        let mut rows = vec![
            (
                "provider key",
                format!(
                    "id {}",
                    key_id_text(b.token_header().map_or(0, |h| h.key_id))
                ),
            ),
            ("grant", grant_text(b.granted_pages, b.granted_vcpus)),
            (
                "payment",
                payment_text(b.chain_len, b.unit_pages, b.units_for_grant()),
            ),
            (
                "expiry",
                format!(
                    "{} ({}{})",
                    b.expiry,
                    units::expiry(b.expiry, now),
                    if b.expired(now) { ": expired" } else { "" }
                ),
            ),
        ];
        match &self.verification {
            None => rows.push((
                "sealed token",
                "not checked (pass --key FILE, the provider key, to check it)".into(),
            )),
            Some(v) => {
                let bits = self.key_bits.unwrap_or(0);
                rows.push((
                    "sealed token",
                    match v.result {
                        "verified" => format!("verified with the provider key (AES-{bits})"),
                        "mismatch" => format!(
                            "opens with the provider key but DIFFERS from the bundle: {}",
                            v.mismatches.join(", ")
                        ),
                        "forged" => "does not open with this key: forged or altered".into(),
                        "other-key" => "sealed under another provider key".into(),
                        other => format!("refused ({other})"),
                    },
                ));
                if let Some(id) = &v.id {
                    rows.push(("token id", id.clone()));
                }
                if let Some(p) = v.price_per_unit {
                    rows.push(("price", format!("{p} per unit")));
                }
            }
        }
        let mut s = format!("Token bundle {}\n", file.display());
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<13} {v}");
        }
        Some(s)
    }
}

/// The refusal of bytes that are not a bundle.
fn not_a_bundle(file: &Path, bytes: &[u8], e: BundleError) -> CliError {
    let err = CliError::new(
        ExitClass::Refused,
        format!("{}: {}", file.display(), e.as_str()),
    )
    .with_errno(e.errno());
    if e == BundleError::BadMagic && TokenHeader::decode(bytes).is_ok() {
        err.with_hint(
            "this is a bare token, not a bundle: without its session key and seed a guest \
             cannot use it; ask the provider for the bundle `selfmig token mint` writes",
        )
    } else {
        err.with_hint("pass a file written by `selfmig token mint`, unaltered")
    }
}

/// Opens `bundle`'s sealed token with `key` and compares it with the
/// bundle; the verification and, unless verified, the refusal.
fn verify(bundle: &TokenBundle, key: &[u8]) -> (Verification, Option<CliError>) {
    let result = |r: &'static str| Verification {
        result: r,
        mismatches: Vec::new(),
        id: None,
        price_per_unit: None,
    };
    let refused = |msg: String, errno: i32| {
        CliError::new(ExitClass::Refused, msg)
            .with_errno(errno)
            .with_hint(
                "check with the key the bundle was minted with; if it is that key, the bundle \
                 was altered: mint a new one",
            )
    };
    let (Some(aead), Some(ours)) = (Gcm::new(key), key_id(&Sha256, key)) else {
        return (
            result("malformed"),
            Some(CliError::new(
                ExitClass::Refused,
                "the key is not 16, 24 or 32 bytes",
            )),
        );
    };
    let theirs = bundle.token_header().map_or(0, |h| h.key_id);
    if theirs != ours {
        return (
            result("other-key"),
            Some(refused(
                format!(
                    "the token is sealed under another provider key (key id {}; this key's is {})",
                    key_id_text(theirs),
                    key_id_text(ours)
                ),
                uapi::ENOKEY,
            )),
        );
    }
    // Opened as at time 0, so that an expired token still shows what it
    // holds; expiry is judged on the bundle's copy (it must agree).
    let t = match Token::open(&aead, ours, &bundle.token, 0) {
        Ok(t) => t,
        Err(TokenError::Forged) => {
            return (
                result("forged"),
                Some(refused(
                    "the sealed token does not open with this key: forged or altered".into(),
                    token::EKEYREJECTED,
                )),
            )
        }
        Err(TokenError::Crypto) => {
            return (
                result("malformed"),
                Some(
                    CliError::new(ExitClass::Failed, "the AES-GCM backend failed")
                        .with_errno(token::EIO),
                ),
            )
        }
        Err(e) => {
            return (
                result("malformed"),
                Some(refused(
                    format!("the sealed token is authentic but refused: {}", e.as_str()),
                    e.errno(),
                )),
            )
        }
    };
    let diffs = mismatches(bundle, &t);
    let v = Verification {
        result: if diffs.is_empty() {
            "verified"
        } else {
            "mismatch"
        },
        mismatches: diffs.iter().map(|(k, _)| *k).collect(),
        id: Some(hexfile::encode(&t.id)),
        price_per_unit: Some(t.price_per_unit),
    };
    if diffs.is_empty() {
        return (v, None);
    }
    let what: Vec<String> = diffs.iter().map(|(k, d)| format!("{k} ({d})")).collect();
    let err = CliError::new(
        ExitClass::Refused,
        format!(
            "the bundle disagrees with its sealed token: {}",
            what.join(", ")
        ),
    )
    .with_errno(uapi::EBADMSG)
    .with_hint("the bundle was altered or put together from different tokens: mint a new one");
    (v, Some(err))
}

/// The bundle fields `t` disagrees with, each with what differs.
pub fn mismatches(bundle: &TokenBundle, t: &Token) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut num = |name: &'static str, ours: u64, theirs: u64| {
        if ours != theirs {
            out.push((name, format!("bundle {ours}, token {theirs}")));
        }
    };
    num("granted_pages", bundle.granted_pages, t.granted_pages);
    num(
        "granted_vcpus",
        bundle.granted_vcpus.into(),
        t.granted_vcpus.into(),
    );
    num("unit_pages", bundle.unit_pages.into(), t.unit_pages.into());
    num("chain_len", bundle.chain_len.into(), t.chain_len.into());
    num("expiry", bundle.expiry, t.expiry);
    if !ct_eq(&bundle.session_key, &t.session_key) {
        out.push(("session_key", "differs".into()));
    }
    if !ct_eq(&bundle.anchor(&Sha256), &t.anchor) {
        out.push(("seed", "does not hash to the token's anchor".into()));
    }
    out
}

/// Inspects the bundle `bytes` (from `file`), checking its sealed token
/// with `key` if given, at `now`.
pub fn examine(file: &Path, bytes: &[u8], key: Option<&[u8]>, now: u64) -> Inspection {
    let bundle = match TokenBundle::decode(bytes) {
        Ok(b) => b,
        Err(e) => return Inspection::failed(not_a_bundle(file, bytes, e)),
    };
    let (verification, mut error) = match key {
        Some(k) => {
            let (v, e) = verify(&bundle, k);
            (Some(v), e)
        }
        None => (None, None),
    };
    if error.is_none() && bundle.expired(now) {
        error = Some(
            CliError::new(
                ExitClass::Refused,
                format!(
                    "the token expired at {} ({})",
                    bundle.expiry,
                    units::expiry(bundle.expiry, now)
                ),
            )
            .with_errno(token::EKEYEXPIRED)
            .with_hint("a loader refuses it: ask the provider for a new one"),
        );
    }
    Inspection {
        key_bits: key.and_then(Gcm::new).map(|g| g.bits()),
        bundle: Some(bundle),
        verification,
        error,
    }
}

/// Reads the files `opts` names and inspects the bundle.
fn inspect_files(opts: &InspectOpts, now: u64) -> Inspection {
    let bytes = match hexfile::read_token(&opts.file) {
        Ok(b) => Secret::new(b),
        Err(mut e) => {
            e.message = e.message.replacen("token file", "bundle file", 1);
            return Inspection::failed(e);
        }
    };
    if let Err(e) = TokenBundle::decode(bytes.bytes()) {
        return Inspection::failed(not_a_bundle(&opts.file, bytes.bytes(), e));
    }
    let key = match opts.key.as_deref().map(hexfile::read_key_bytes).transpose() {
        Ok(k) => k,
        Err(e) => return Inspection::failed(e),
    };
    examine(
        &opts.file,
        bytes.bytes(),
        key.as_ref().map(Secret::bytes),
        now,
    )
}

/// Runs `selfmig token inspect`.
fn inspect(opts: &InspectOpts, now: u64) -> ExitClass {
    let ins = inspect_files(opts, now);
    let class = ins.class();
    if opts.json {
        let report = TokenInspectReport {
            schema_version: SCHEMA_VERSION,
            outcome: class.as_str(),
            exit_code: class.code(),
            file: opts.file.display().to_string(),
            bundle: ins.info(now),
            verification: ins.verification.clone(),
            error: ins.error.as_ref().map(ErrorInfo::from),
        };
        println!("{}", json::to_line(&report));
    } else if let Some(text) = ins.text(&opts.file, now) {
        print!("{text}");
    }
    match ins.error {
        Some(e) => fail(e),
        None => class,
    }
}

// ---------------------------------------------------------------------------
// migrate

/// What `migrate` says about the token bytes it passes on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenNote {
    /// For a bundle: its grant, for the progress header.
    pub header: Option<String>,
    /// What to warn about: not a bundle, or expired.
    pub warning: Option<String>,
}

/// Describes the token bytes `migrate` passes to the kernel, at `now`.
pub fn describe_token(bytes: &[u8], now: u64) -> TokenNote {
    match TokenBundle::decode(bytes) {
        Ok(b) => TokenNote {
            header: Some(format!(
                "token bundle: {}; {} link{} of {}; expires {}",
                grant_text(b.granted_pages, b.granted_vcpus),
                b.chain_len,
                if b.chain_len == 1 { "" } else { "s" },
                units::pages_mib(u64::from(b.unit_pages)),
                units::expiry(b.expiry, now)
            )),
            warning: b.expired(now).then(|| {
                format!(
                    "the token expired at {} ({}): the target will refuse it",
                    b.expiry,
                    units::expiry(b.expiry, now)
                )
            }),
        },
        Err(e) => TokenNote {
            header: None,
            warning: Some(format!(
                "the token file does not hold a token bundle ({}); passing it as it is, \
                 the kernel decides",
                e.as_str()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, PAGES_PER_MIB};
    use clap::Parser;
    use selfmig_proto::token::TOKEN_LEN;

    const KEY: [u8; 32] = [0x42; 32];
    const NOW: u64 = 1_800_000_000;

    /// Pages (4 KiB) in `mib` MiB.
    fn pages(mib: u64) -> u64 {
        mib * PAGES_PER_MIB
    }

    fn draws() -> Draws {
        Draws {
            id: [9; 16],
            nonce: [3; 12],
            session_key: [0x5e; 32],
            seed: [7; 32],
        }
    }

    fn mint_opts(args: &[&str]) -> MintOpts {
        let all = ["selfmig", "token", "mint"].iter().chain(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Token(TokenOpts {
                command: TokenCommand::Mint(m),
            }) => m,
            other => panic!("{other:?}"),
        }
    }

    /// The plan for the `token mint` arguments `args` (split at spaces).
    fn plan_of(args: &str) -> Result<Plan, CliError> {
        let args: Vec<&str> = args.split_whitespace().collect();
        plan(&mint_opts(&args), NOW)
    }

    /// 1 GiB and 2 vCPUs, and `extra`.
    fn with(extra: &str) -> String {
        format!("--key k --ram-mib 1024 --vcpus 2 {extra}")
    }

    fn minted(plan: &Plan) -> Minted {
        mint_bundle(&KEY, plan, &draws()).unwrap()
    }

    #[test]
    fn plan_defaults_pay_for_the_grant() {
        let p = plan_of(&with("--expires-in 3600")).unwrap();
        assert_eq!(
            p,
            Plan {
                granted_pages: pages(1024),
                granted_vcpus: 2,
                unit_pages: 16_384,
                chain_len: 16,
                expiry: NOW + 3600,
                price_per_unit: 0,
                warnings: vec![],
            }
        );
        // A grant that is not a whole number of units rounds up.
        let p = plan_of("--key k --pages 16385 --vcpus 1 --expiry 1800000001").unwrap();
        assert_eq!((p.chain_len, p.expiry), (2, NOW + 1));
        let p = plan_of(&with("--expires-in 1 --unit-mib 1 --price 9")).unwrap();
        assert_eq!(
            (p.unit_pages, p.chain_len, p.price_per_unit),
            (256, 1024, 9)
        );
    }

    #[test]
    fn plan_refusals_and_warnings() {
        // An expiry that is not in the future is a usage error.
        for t in ["1800000000", "1"] {
            let e = plan_of(&with(&format!("--expiry {t}"))).unwrap_err();
            assert_eq!(e.class, ExitClass::Usage);
            assert!(e.message.contains("not in the future"), "{}", e.message);
        }
        let e = plan_of(&with(&format!("--expires-in {}", u64::MAX))).unwrap_err();
        assert_eq!(e.class, ExitClass::Usage);
        // A grant needing more links than a chain may have.
        let e =
            plan_of("--key k --ram-mib 1048577 --vcpus 1 --expires-in 1 --unit-mib 1").unwrap_err();
        assert_eq!(e.class, ExitClass::Usage);
        assert!(e.message.contains("1048577 links"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("raise --unit-mib"));
        // Exactly the longest chain is fine.
        let p = plan_of("--key k --ram-mib 1048576 --vcpus 1 --expires-in 1 --unit-mib 1").unwrap();
        assert_eq!(p.chain_len, MAX_CHAIN_LEN);
        // A chain shorter or longer than the grant needs is minted, with a
        // warning.
        let p = plan_of(&with("--expires-in 1 --chain-len 4")).unwrap();
        assert_eq!(p.chain_len, 4);
        assert!(
            p.warnings[0].contains("pays for only 65536 of the 262144"),
            "{:?}",
            p.warnings
        );
        let p = plan_of(&with("--expires-in 1 --chain-len 20")).unwrap();
        assert!(
            p.warnings[0].contains("only 16 links can be spent"),
            "{:?}",
            p.warnings
        );
        let p = plan_of(&with("--expires-in 1 --chain-len 16")).unwrap();
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn mint_then_inspect_round_trip() {
        let p = plan_of(&with("--expires-in 3600 --price 5")).unwrap();
        let m = minted(&p);
        assert_eq!(m.key_id, key_id(&Sha256, &KEY).unwrap());
        assert_eq!(m.key_bits, 256);
        let text = bundle_text(&m.bundle);
        assert_eq!(text.bytes().len(), 2 * 264 + 1);
        assert!(text.bytes().ends_with(b"\n"));
        // Read back as migrate and inspect read it: hex, then a bundle.
        let bytes = hexfile::decode_token(text.bytes()).unwrap();
        assert_eq!(TokenBundle::decode(&bytes).unwrap(), m.bundle);
        let file = Path::new("guest.bundle");

        // Without the key: the grant, nothing checked.
        let ins = examine(file, &bytes, None, NOW);
        assert_eq!(ins.class(), ExitClass::Success);
        assert!(ins.verification.is_none());
        let info = ins.info(NOW).unwrap();
        assert_eq!(
            info,
            BundleInfo {
                key_id: m.key_id,
                granted_pages: 262_144,
                granted_vcpus: 2,
                unit_pages: 16_384,
                chain_len: 16,
                units_for_grant: 16,
                expiry: NOW + 3600,
                expired: false,
            }
        );
        let shown = ins.text(file, NOW).unwrap();
        assert!(shown.starts_with("Token bundle guest.bundle\n"), "{shown}");
        assert!(
            shown.contains("  grant         262144 pages (1024.0 MiB), 2 vCPUs\n"),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  payment       16 links of 16384 pages (64.0 MiB); 16 pay for the grant\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("2027-01-15 09:00:00 UTC, in 1h 0m"),
            "{shown}"
        );
        assert!(shown.contains("not checked"), "{shown}");

        // With the key: verified, and the sealed id and price are shown.
        let ins = examine(file, &bytes, Some(&KEY), NOW);
        assert_eq!(ins.class(), ExitClass::Success, "{:?}", ins.error);
        let v = ins.verification.clone().unwrap();
        assert_eq!(v.result, "verified");
        assert!(v.mismatches.is_empty());
        assert_eq!(v.id.as_deref(), Some("09".repeat(16).as_str()));
        assert_eq!(v.price_per_unit, Some(5));
        let shown = ins.text(file, NOW).unwrap();
        assert!(
            shown.contains("verified with the provider key (AES-256)"),
            "{shown}"
        );
        assert!(shown.contains("  price         5 per unit\n"), "{shown}");

        // Neither output shows a secret.
        let report = TokenInspectReport {
            schema_version: 1,
            outcome: "success",
            exit_code: 0,
            file: "f".into(),
            bundle: ins.info(NOW),
            verification: ins.verification.clone(),
            error: None,
        };
        let summary = json::to_line(&m.summary());
        for out in [shown, json::to_line(&report), summary, m.text(None, NOW)] {
            for secret in [[0x5e; 32], [7; 32]] {
                assert!(!out.contains(&hexfile::encode(&secret)), "{out}");
                assert!(!out.contains(&hexfile::encode(&secret[..4])), "{out}");
            }
        }
    }

    #[test]
    fn every_key_length_mints() {
        let p = plan_of(&with("--expires-in 60")).unwrap();
        for (len, bits) in [(16, 128), (24, 192), (32, 256)] {
            let key = vec![0x11; len];
            let m = mint_bundle(&key, &p, &draws()).unwrap();
            assert_eq!(m.key_bits, bits);
            let bytes = m.bundle.encode();
            let ins = examine(Path::new("b"), &bytes, Some(&key), NOW);
            assert_eq!(
                ins.verification.unwrap().result,
                "verified",
                "{len}: {:?}",
                ins.error
            );
        }
    }

    #[test]
    fn inspect_refusals() {
        let p = plan_of(&with("--expires-in 3600")).unwrap();
        let m = minted(&p);
        let good = m.bundle.encode();
        let file = Path::new("b");
        let refused = |bytes: &[u8], key: Option<&[u8]>, now: u64| {
            let ins = examine(file, bytes, key, now);
            assert_eq!(ins.class(), ExitClass::Refused, "{:?}", ins.error);
            ins
        };

        // Truncated at any length, or not a bundle at all.
        for n in [0, 1, 100, 263] {
            let ins = refused(&good[..n], None, NOW);
            assert!(ins.bundle.is_none());
            let e = ins.error.unwrap();
            assert!(e.message.contains("truncated"), "{}", e.message);
            assert_eq!(e.errno, Some(uapi::EBADMSG));
        }
        let bare = m.bundle.token;
        let e = refused(&bare, None, NOW).error.unwrap();
        assert!(e.hint.unwrap().contains("bare token"));
        assert_eq!(bare.len(), TOKEN_LEN);

        // Another key: refused before trying to open.
        let other = [0x43u8; 32];
        let ins = refused(&good, Some(&other), NOW);
        assert_eq!(ins.verification.as_ref().unwrap().result, "other-key");
        assert_eq!(ins.error.as_ref().unwrap().errno, Some(uapi::ENOKEY));
        assert!(ins
            .text(file, NOW)
            .unwrap()
            .contains("another provider key"));

        // A flipped bit in the sealed part: forged.
        let mut forged = good;
        forged[100] ^= 1;
        let ins = refused(&forged, Some(&KEY), NOW);
        assert_eq!(ins.verification.as_ref().unwrap().result, "forged");
        assert_eq!(ins.error.unwrap().errno, Some(token::EKEYREJECTED));
        // ... which only the key can tell.
        assert_eq!(
            examine(file, &forged, None, NOW).class(),
            ExitClass::Success
        );

        // Plaintext fields that disagree with the sealed token.
        let mut lying = m.bundle.clone();
        lying.granted_pages = 1 << 30;
        lying.chain_len = 17;
        lying.seed = [8; 32];
        lying.session_key = [0; 32];
        let ins = refused(&lying.encode(), Some(&KEY), NOW);
        let v = ins.verification.as_ref().unwrap();
        assert_eq!(v.result, "mismatch");
        assert_eq!(
            v.mismatches,
            ["granted_pages", "chain_len", "session_key", "seed"]
        );
        let e = ins.error.as_ref().unwrap();
        assert!(
            e.message
                .contains("granted_pages (bundle 1073741824, token 262144)"),
            "{}",
            e.message
        );
        assert!(ins.text(file, NOW).unwrap().contains("DIFFERS"));
        // A right seed with a wrong chain length does not hash to the anchor.
        let mut short = m.bundle.clone();
        short.chain_len = 15;
        let v = refused(&short.encode(), Some(&KEY), NOW)
            .verification
            .unwrap();
        assert_eq!(v.mismatches, ["chain_len", "seed"]);
        let mut late = m.bundle.clone();
        late.expiry += 1;
        late.unit_pages = 1;
        late.granted_vcpus = 3;
        let v = refused(&late.encode(), Some(&KEY), NOW)
            .verification
            .unwrap();
        assert_eq!(v.mismatches, ["granted_vcpus", "unit_pages", "expiry"]);

        // Expired: refused with or without the key, still shown.
        let later = NOW + 3600;
        let ins = refused(&good, None, later);
        assert_eq!(ins.error.as_ref().unwrap().errno, Some(token::EKEYEXPIRED));
        assert!(ins.info(later).unwrap().expired);
        assert!(ins.text(file, later).unwrap().contains(": expired"));
        let ins = refused(&good, Some(&KEY), later);
        assert_eq!(ins.verification.unwrap().result, "verified");
    }

    #[test]
    fn secret_file_mode_and_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.hex");
        write_secret_file(&path, b"one\n", false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = write_secret_file(&path, b"two\n", false).unwrap_err();
        assert_eq!(e.class, ExitClass::Usage);
        assert_eq!(e.errno, Some(libc::EEXIST));
        assert!(e.hint.unwrap().contains("--force"));
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        // --force overwrites, and tightens a looser mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&path, b"two\n", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = write_secret_file(&dir.path().join("no/such/dir"), b"x", false).unwrap_err();
        assert_eq!(e.class, ExitClass::Usage);
        assert_eq!(e.errno, Some(libc::ENOENT));
    }

    #[test]
    fn migrate_notes() {
        let p = plan_of(&with("--expires-in 3600")).unwrap();
        let m = minted(&p);
        let note = describe_token(&m.bundle.encode(), NOW);
        assert_eq!(
            note.header.as_deref(),
            Some(
                "token bundle: 262144 pages (1024.0 MiB), 2 vCPUs; 16 links of 64.0 MiB; \
                 expires 2027-01-15 09:00:00 UTC, in 1h 0m"
            )
        );
        assert_eq!(note.warning, None);
        let note = describe_token(&m.bundle.encode(), NOW + 4000);
        assert!(note.header.is_some());
        assert!(note.warning.unwrap().contains("the target will refuse it"));
        let note = describe_token(&[0x00, 0x11], NOW);
        assert_eq!(note.header, None);
        assert!(note
            .warning
            .unwrap()
            .contains("does not hold a token bundle (token bundle truncated)"));
        let note = describe_token(&m.bundle.token, NOW);
        assert!(note.warning.unwrap().contains("bad magic"));
    }

    #[test]
    fn mint_summary_text() {
        let p = plan_of(&with("--expires-in 3600 --price 5")).unwrap();
        let m = minted(&p);
        let t = m.text(Some(Path::new("/root/g.bundle")), NOW);
        assert!(
            t.starts_with("Minted a token bundle in /root/g.bundle (mode 0600).\n"),
            "{t}"
        );
        assert!(
            t.contains(&format!("  token id      {}\n", "09".repeat(16))),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "  provider key  id {} (AES-256)\n",
                key_id_text(m.key_id)
            )),
            "{t}"
        );
        assert!(t.contains("  price         5 per unit\n"), "{t}");
        let s = m.summary();
        assert_eq!(s.units_for_grant, 16);
        assert_eq!(s.price_per_unit, 5);
        assert_eq!(s.id, "09".repeat(16));
        assert!(m.text(None, NOW).contains("(on stdout)"));
        // Draws from the OS differ.
        assert_ne!(Draws::from_os().unwrap(), Draws::from_os().unwrap());
        assert!(!format!("{:?}", draws()).contains("94"));
    }
}
