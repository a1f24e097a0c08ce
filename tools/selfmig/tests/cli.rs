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
    for sub in ["migrate", "receive", "status", "abort"] {
        assert!(out.contains(sub), "{sub} in help");
    }
    let (code, out, _) = parts(&selfmig(&["--version"]));
    assert_eq!(code, 0);
    assert!(out.contains("ABI: wire 1 image 1 start_size 64 status_size 80"));
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
        &[("version", "wire 1 image 1 start_size 96 status_size 80\n")],
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
            ("version", "wire 1 image 1 start_size 64 status_size 80\n"),
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
