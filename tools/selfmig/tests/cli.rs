// SPDX-License-Identifier: GPL-2.0

//! Runs the `selfmig` binary as a user would: exit codes, stdout/stderr,
//! JSON documents, and sysfs writes against a fake sysfs tree (regular
//! files standing in for the attributes). Nothing here needs the modules;
//! driving a real migration through the CLI is the in-guest test's job.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `selfmig args`.
fn selfmig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selfmig"))
        .args(args)
        .output()
        .expect("run selfmig")
}

/// The exit code, stdout and stderr of `out`.
fn parts(out: &Output) -> (i32, String, String) {
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// stdout parsed as exactly one JSON object on one line.
fn json(stdout: &str) -> Value {
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    let v: Value = serde_json::from_str(stdout).expect("valid JSON");
    assert!(v.is_object());
    v
}

/// A fake sysfs root with the attributes of `module` as regular files.
fn fake_module(root: &Path, module: &str, attrs: &[(&str, &str)]) {
    let dir = root.join("kernel").join(module);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, value) in attrs {
        std::fs::write(dir.join(name), value).unwrap();
    }
}

#[test]
fn help_and_version() {
    let (code, out, _) = parts(&selfmig(&["--help"]));
    assert_eq!(code, 0);
    for sub in ["migrate", "receive", "status", "abort", "token"] {
        assert!(out.contains(sub), "{sub} in help");
    }
    let (code, out, _) = parts(&selfmig(&["--version"]));
    assert_eq!(code, 0);
    assert!(out.contains("ABI: wire 4 image 1 start_size 64 status_size 80"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["migrate", "--to", "127.0.0.1:7000"][..],
        &["migrate", "--to", "10.0.0.2"],
        &["migrate", "--to", "10.0.0.2:7000", "--max-downtime", "0"],
        &[
            "migrate",
            "--to",
            "10.0.0.2:7000",
            "--max-downtime",
            "60001",
        ],
        &["migrate", "--to", "10.0.0.2:7000", "--tracker", "dirtybits"],
        &["migrate"],
        &["receive"],
        &["receive", "--stop", "--listen", "0.0.0.0:7000"],
        &["nonsense"],
    ] {
        let (code, out, err) = parts(&selfmig(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert!(!err.is_empty(), "{args:?}");
    }
}

#[test]
fn bad_endpoint_says_why() {
    let (code, _, err) = parts(&selfmig(&["migrate", "--to", "10.0.0.2:0"]));
    assert_eq!(code, 2);
    assert!(err.contains("port must be 1..65535"), "{err}");
}

#[test]
fn unreadable_token_is_usage_and_still_json() {
    let (code, out, err) = parts(&selfmig(&[
        "migrate",
        "--to",
        "10.0.0.2:7000",
        "--token",
        "/nonexistent/token",
        "--json",
    ]));
    assert_eq!(code, 2);
    let v = json(&out);
    assert_eq!(v["outcome"], "usage");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["error"]["name"], "ENOENT");
    assert!(err.contains("cannot read token file"), "{err}");
}

#[test]
fn missing_token_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let sysfs = root.path().to_str().unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "migrate",
        "--to",
        "10.0.0.2:7000",
        "--sysfs",
        sysfs,
    ]));
    assert_eq!(code, 3);
    assert!(out.is_empty());
    assert!(err.contains("no token set (ENOKEY)"), "{err}");
    assert!(err.contains("selfmig: next: pass --token FILE"), "{err}");
}

#[test]
fn module_not_loaded_is_environment() {
    let root = tempfile::tempdir().unwrap();
    let sysfs = root.path().to_str().unwrap();
    let token = root.path().join("token");
    std::fs::write(&token, "00112233\n").unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "migrate",
        "--to",
        "10.0.0.2:7000",
        "--token",
        token.to_str().unwrap(),
        "--sysfs",
        sysfs,
        "--dev",
        "/nonexistent/self_migrate",
        "--json",
    ]));
    assert_eq!(code, 5);
    let v = json(&out);
    assert_eq!(v["outcome"], "environment");
    assert_eq!(v["state"], Value::Null);
    assert!(err.contains("insmod self_migrate.ko"), "{err}");

    let (code, _, err) = parts(&selfmig(&[
        "abort",
        "--sysfs",
        sysfs,
        "--dev",
        "/nonexistent/self_migrate",
    ]));
    assert_eq!(code, 5);
    assert!(err.contains("self_migrate is not loaded"), "{err}");
}

#[test]
fn ioctl_on_the_wrong_node_is_environment() {
    // A real START ioctl, on a regular file: ENOTTY.
    let root = tempfile::tempdir().unwrap();
    let token = root.path().join("token");
    let node = root.path().join("not-a-device");
    std::fs::write(&token, "aa\n").unwrap();
    std::fs::write(&node, "").unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "migrate",
        "--to",
        "10.0.0.2:7000",
        "--token",
        token.to_str().unwrap(),
        "--sysfs",
        root.path().to_str().unwrap(),
        "--dev",
        node.to_str().unwrap(),
    ]));
    assert_eq!(code, 5);
    assert!(out.is_empty());
    assert!(err.contains("unknown ioctl command (ENOTTY)"), "{err}");
    assert!(err.contains("--dev"), "{err}");
}

#[test]
fn abi_mismatch_is_environment() {
    let root = tempfile::tempdir().unwrap();
    fake_module(
        root.path(),
        "self_migrate",
        &[("version", "wire 4 image 1 start_size 96 status_size 80\n")],
    );
    let token = root.path().join("token");
    std::fs::write(&token, "aa\n").unwrap();
    let (code, _, err) = parts(&selfmig(&[
        "migrate",
        "--to",
        "10.0.0.2:7000",
        "--token",
        token.to_str().unwrap(),
        "--sysfs",
        root.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 5);
    assert!(err.contains("another ioctl ABI"), "{err}");
}

#[test]
fn status_of_nothing() {
    let root = tempfile::tempdir().unwrap();
    let sysfs = root.path().to_str().unwrap();
    let (code, out, err) = parts(&selfmig(&["status", "--sysfs", sysfs]));
    assert_eq!(code, 5);
    assert!(out.is_empty());
    assert!(err.contains("neither self_migrate nor inflate_loader is loaded"));
    let (code, out, _) = parts(&selfmig(&["status", "--json", "--sysfs", sysfs]));
    assert_eq!(code, 5);
    let v = json(&out);
    assert_eq!(v["self_migrate"], Value::Null);
    assert_eq!(v["inflate_loader"], Value::Null);
}

#[test]
fn status_of_a_source() {
    let root = tempfile::tempdir().unwrap();
    fake_module(
        root.path(),
        "self_migrate",
        &[
            ("status", "failed\n"),
            ("target", "10.77.0.3:7000\n"),
            ("max_downtime_ms", "50\n"),
            ("verify", "0\n"),
            ("tracker", "paging\n"),
            ("version", "wire 4 image 1 start_size 64 status_size 80\n"),
            (
                "stats",
                "state: failed\nround: 2\nbytes_sent: 2097152\nlast_errno: 104\n\
                 last_error: connection reset\n",
            ),
        ],
    );
    let sysfs = root.path().to_str().unwrap();
    let (code, out, _) = parts(&selfmig(&["status", "--sysfs", sysfs]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("self_migrate (this guest can migrate): failed\n"),
        "{out}"
    );
    assert!(out.contains("bytes_sent    2097152 (2.0 MiB)"), "{out}");
    assert!(out.contains("last_errno    104 (ECONNRESET)"), "{out}");

    let (code, out, _) = parts(&selfmig(&["status", "--json", "--sysfs", sysfs]));
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["schema_version"], 1);
    let s = &v["self_migrate"];
    assert_eq!(s["state"], "failed");
    assert_eq!(s["target"], "10.77.0.3:7000");
    assert_eq!(s["max_downtime_ms"], 50);
    assert_eq!(s["verify"], false);
    assert_eq!(s["stats"]["round"], 2);
    assert_eq!(s["stats"]["last_error"], "connection reset");
    assert_eq!(v["inflate_loader"], Value::Null);
}

#[test]
fn receive_configures_the_loader() {
    let root = tempfile::tempdir().unwrap();
    fake_module(
        root.path(),
        "inflate_loader",
        &[
            ("listen", ""),
            ("key", ""),
            ("enable", ""),
            ("status", "listening\n"),
        ],
    );
    let key = root.path().join("provider.key");
    std::fs::write(&key, "000102030405060708090a0b0c0d0e0f\n").unwrap();
    let sysfs = root.path().to_str().unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "receive",
        "--listen",
        "0.0.0.0:7000",
        "--key",
        key.to_str().unwrap(),
        "--sysfs",
        sysfs,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("inflate_loader: listening on 0.0.0.0:7000 (key set)\n"));
    let dir = root.path().join("kernel/inflate_loader");
    let read = |a: &str| std::fs::read_to_string(dir.join(a)).unwrap();
    assert_eq!(read("listen"), "0.0.0.0:7000\n");
    assert_eq!(read("key"), "000102030405060708090a0b0c0d0e0f\n");
    assert_eq!(read("enable"), "1\n");

    let (code, out, _) = parts(&selfmig(&["receive", "--stop", "--sysfs", sysfs]));
    assert_eq!(code, 0);
    assert_eq!(out, "inflate_loader: stopped listening\n");
    assert_eq!(read("enable"), "0\n");
}

#[test]
fn receive_with_a_short_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    fake_module(
        root.path(),
        "inflate_loader",
        &[("listen", ""), ("key", "")],
    );
    let key = root.path().join("short.key");
    std::fs::write(&key, "0011\n").unwrap();
    let (code, _, err) = parts(&selfmig(&[
        "receive",
        "--listen",
        "0.0.0.0:7000",
        "--key",
        key.to_str().unwrap(),
        "--sysfs",
        root.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 3);
    assert!(err.contains("16, 24 or 32 bytes"), "{err}");
}

#[test]
fn receive_without_the_loader_is_environment() {
    let root = tempfile::tempdir().unwrap();
    let (code, _, err) = parts(&selfmig(&[
        "receive",
        "--listen",
        "0.0.0.0:7000",
        "--sysfs",
        root.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 5);
    assert!(err.contains("insmod inflate_loader.ko"), "{err}");
}

/// Writes a provider key file of `len` bytes of `byte` in `dir`.
fn key_file(dir: &Path, name: &str, byte: u8, len: usize) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", format!("{byte:02x}").repeat(len))).unwrap();
    path.to_str().unwrap().to_string()
}

/// The bytes of a hex file.
fn hex_bytes(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let t = text.trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
        .collect()
}

/// Lowercase hex of `b`.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn token_mint_then_inspect() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "provider.key", 0x42, 32);
    let bundle = dir.path().join("guest.bundle");
    let b = bundle.to_str().unwrap();
    let mint = [
        "token",
        "mint",
        "--key",
        &key,
        "--ram-mib",
        "1024",
        "--vcpus",
        "2",
        "--expires-in",
        "3600",
        "--price",
        "5",
        "--out",
        b,
    ];

    // Mint to a file, with the JSON summary.
    let mut args = mint.to_vec();
    args.push("--json");
    let (code, out, err) = parts(&selfmig(&args));
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["outcome"], "success");
    assert_eq!(v["out"], b);
    assert_eq!(v["bundle"]["granted_pages"], 262_144);
    assert_eq!(v["bundle"]["granted_vcpus"], 2);
    assert_eq!(v["bundle"]["unit_pages"], 16_384);
    assert_eq!(v["bundle"]["chain_len"], 16);
    assert_eq!(v["bundle"]["key_bits"], 256);
    assert_eq!(v["bundle"]["price_per_unit"], 5);
    assert_eq!(v["error"], Value::Null);
    let id = v["bundle"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let mode = std::fs::metadata(&bundle).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(text.len(), 2 * 264 + 1);
    assert_eq!(text.lines().count(), 1);
    let bytes = hex_bytes(&bundle);
    assert_eq!(&bytes[0..4], b"SMTB");
    let secrets = [hex(&bytes[200..232]), hex(&bytes[232..264])];
    let mut seen = vec![out, err];

    // Not overwritten without --force; overwritten with it.
    let (code, out, err) = parts(&selfmig(&mint));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("(EEXIST)") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&bundle).unwrap(), text);
    let mut args = mint.to_vec();
    args.push("--force");
    let (code, _, err) = parts(&selfmig(&args));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with(&format!("Minted a token bundle in {b} (mode 0600).\n")),
        "{err}"
    );
    assert!(
        err.contains("  grant         262144 pages (1024.0 MiB), 2 vCPUs\n"),
        "{err}"
    );
    assert_ne!(
        std::fs::read_to_string(&bundle).unwrap(),
        text,
        "fresh randomness"
    );
    let bytes = hex_bytes(&bundle);
    let secrets2 = [hex(&bytes[200..232]), hex(&bytes[232..264])];
    seen.push(err);

    // Inspect without the key: the grant.
    let (code, out, err) = parts(&selfmig(&["token", "inspect", b]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("Token bundle {b}\n")), "{out}");
    assert!(out.contains("16 links of 16384 pages (64.0 MiB)"), "{out}");
    assert!(out.contains("not checked"), "{out}");
    seen.push(out);
    let (code, out, _) = parts(&selfmig(&["token", "inspect", b, "--json"]));
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["bundle"]["granted_pages"], 262_144);
    assert_eq!(v["bundle"]["expired"], false);
    assert_eq!(v["verification"], Value::Null);
    seen.push(out);

    // With the key: verified.
    let (code, out, err) = parts(&selfmig(&["token", "inspect", b, "--key", &key]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("verified with the provider key (AES-256)"),
        "{out}"
    );
    assert!(out.contains("  price         5 per unit\n"), "{out}");
    seen.push(out);
    let (code, out, _) = parts(&selfmig(&["token", "inspect", b, "--key", &key, "--json"]));
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["outcome"], "success");
    assert_eq!(v["verification"]["result"], "verified");
    assert_eq!(v["verification"]["mismatches"], serde_json::json!([]));
    assert_eq!(v["verification"]["price_per_unit"], 5);
    seen.push(out);

    // With the wrong key: refused.
    let wrong = key_file(dir.path(), "wrong.key", 0x43, 32);
    let (code, out, err) = parts(&selfmig(&["token", "inspect", b, "--key", &wrong]));
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("sealed under another provider key"), "{out}");
    assert!(err.contains("(ENOKEY)"), "{err}");
    let (code, out, _) = parts(&selfmig(&[
        "token", "inspect", b, "--key", &wrong, "--json",
    ]));
    assert_eq!(code, 3);
    let v = json(&out);
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["verification"]["result"], "other-key");
    assert_eq!(v["error"]["name"], "ENOKEY");

    // A forged token (one bit of the sealed body) and a bundle whose
    // plaintext grant was altered: refused with the key.
    let mut forged = bytes.clone();
    forged[100] ^= 1;
    let f = dir.path().join("forged.bundle");
    std::fs::write(&f, hex(&forged)).unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "token",
        "inspect",
        f.to_str().unwrap(),
        "--key",
        &key,
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("forged or altered"), "{out}");
    assert!(err.contains("(EKEYREJECTED)"), "{err}");
    let mut lying = bytes.clone();
    lying[176] = 64;
    std::fs::write(&f, hex(&lying)).unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "token",
        "inspect",
        f.to_str().unwrap(),
        "--key",
        &key,
        "--json",
    ]));
    assert_eq!(code, 3, "{err}");
    let v = json(&out);
    assert_eq!(v["verification"]["result"], "mismatch");
    assert_eq!(
        v["verification"]["mismatches"],
        serde_json::json!(["granted_vcpus"])
    );
    assert!(err.contains("granted_vcpus (bundle 64, token 2)"), "{err}");

    // A truncated file: refused, with or without the key.
    let t = dir.path().join("truncated.bundle");
    std::fs::write(&t, &hex(&bytes)[..2 * 200]).unwrap();
    let ts = t.to_str().unwrap();
    for args in [
        &["token", "inspect", ts][..],
        &["token", "inspect", ts, "--key", &key],
    ] {
        let (code, out, err) = parts(&selfmig(args));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains("token bundle truncated (EBADMSG)"), "{err}");
    }
    let (code, out, _) = parts(&selfmig(&["token", "inspect", ts, "--json"]));
    assert_eq!(code, 3);
    let v = json(&out);
    assert_eq!(v["bundle"], Value::Null);
    assert_eq!(v["error"]["name"], "EBADMSG");

    // A missing file is a usage error.
    let (code, _, err) = parts(&selfmig(&["token", "inspect", "/nonexistent/b"]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot read bundle file"), "{err}");

    // No output ever shows a secret.
    for out in &seen {
        for s in secrets.iter().chain(&secrets2) {
            assert!(!out.contains(s.as_str()), "secret in {out}");
        }
    }
}

#[test]
fn token_mint_to_stdout_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "k128", 0x17, 16);
    let (code, out, err) = parts(&selfmig(&[
        "token",
        "mint",
        "--key",
        &key,
        "--pages",
        "1000",
        "--vcpus",
        "1",
        "--expires-in",
        "60",
        "--unit-mib",
        "1",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 2 * 264 + 1);
    assert!(out.ends_with('\n'));
    assert!(err.contains("Minted a token bundle (on stdout)."), "{err}");
    assert!(err.contains("(AES-128)"), "{err}");
    assert!(
        err.contains("4 links of 256 pages (1.0 MiB); 4 pay for the grant"),
        "{err}"
    );
    let b = dir.path().join("b");
    std::fs::write(&b, &out).unwrap();
    let (code, out, err) = parts(&selfmig(&[
        "token",
        "inspect",
        b.to_str().unwrap(),
        "--key",
        &key,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("verified with the provider key (AES-128)"),
        "{out}"
    );

    let short = key_file(dir.path(), "short", 0x17, 8);
    let base = [
        "token",
        "mint",
        "--pages",
        "1",
        "--vcpus",
        "1",
        "--expires-in",
        "60",
    ];
    for (extra, want) in [
        (&["--key", "/nonexistent/k"][..], 2),
        (&["--key", &short], 3),
        (&["--key", &key, "--json"], 2),
        (&["--key", &key, "--chain-len", "0"], 2),
        (&["--key", &key, "--expiry", "1"], 2),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let (code, out, err) = parts(&selfmig(&args));
        assert_eq!(code, want, "{extra:?}: {err}");
        assert!(out.is_empty(), "{extra:?}: {out}");
        assert!(!err.is_empty());
    }
    // With --json, a failure still prints its document.
    let o = dir.path().join("never");
    let (code, out, err) = parts(&selfmig(&[
        "token",
        "mint",
        "--key",
        &short,
        "--pages",
        "1",
        "--vcpus",
        "1",
        "--expires-in",
        "60",
        "--out",
        o.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(code, 3);
    let v = json(&out);
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["bundle"], Value::Null);
    assert!(err.contains("16, 24 or 32"), "{err}");
    assert!(!o.exists());
}

#[test]
fn migrate_shows_a_bundle_and_warns_about_anything_else() {
    let root = tempfile::tempdir().unwrap();
    let key = key_file(root.path(), "k", 0x42, 32);
    let bundle = root.path().join("guest.bundle");
    let (code, _, err) = parts(&selfmig(&[
        "token",
        "mint",
        "--key",
        &key,
        "--pages",
        "4096",
        "--vcpus",
        "1",
        "--expires-in",
        "600",
        "--out",
        bundle.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let migrate = |token: &Path| {
        parts(&selfmig(&[
            "migrate",
            "--to",
            "10.0.0.2:7000",
            "--token",
            token.to_str().unwrap(),
            "--sysfs",
            root.path().to_str().unwrap(),
            "--dev",
            "/nonexistent/self_migrate",
        ]))
    };
    // A bundle: no warning (and no header, since nothing started).
    let (code, _, err) = migrate(&bundle);
    assert_eq!(code, 5);
    assert!(!err.contains("warning"), "{err}");
    // With a device node that opens (a regular file: START fails with
    // ENOTTY), the progress display starts with the bundle's grant.
    let node = root.path().join("not-a-device");
    std::fs::write(&node, "").unwrap();
    let (code, _, err) = parts(&selfmig(&[
        "migrate",
        "--to",
        "10.0.0.2:7000",
        "--token",
        bundle.to_str().unwrap(),
        "--sysfs",
        root.path().to_str().unwrap(),
        "--dev",
        node.to_str().unwrap(),
    ]));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.starts_with(
            "selfmig: token bundle: 4096 pages (16.0 MiB), 1 vCPU; 1 link of 64.0 MiB; expires "
        ),
        "{err}"
    );
    assert!(err.contains("(ENOTTY)"), "{err}");
    // Anything else is passed all the same, with a warning.
    let raw = root.path().join("raw");
    std::fs::write(&raw, "00112233\n").unwrap();
    let (code, _, err) = migrate(&raw);
    assert_eq!(code, 5);
    assert!(
        err.contains("warning") && err.contains("does not hold a token bundle"),
        "{err}"
    );
    assert!(err.contains("insmod self_migrate.ko"), "{err}");
}
