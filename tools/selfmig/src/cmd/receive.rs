// SPDX-License-Identifier: GPL-2.0

//! `selfmig receive`: configure this VM's `inflate_loader` (listen address,
//! key) and start it listening, or stop it.

use super::fail;
use crate::cli::ReceiveOpts;
use crate::errno::{self, Op};
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::hexfile;
use crate::sysfs::{Module, Sysfs};

/// Runs `selfmig receive`.
pub fn run(opts: &ReceiveOpts, sysfs: &Sysfs) -> ExitClass {
    let done = if opts.stop {
        stop(sysfs)
    } else {
        listen(opts, sysfs)
    };
    match done {
        Ok(msg) => {
            print!("{msg}");
            ExitClass::Success
        }
        Err(e) => fail(e),
    }
}

/// Writes `value` to the loader's `attr` for `op`, explaining a refusal.
fn write(sysfs: &Sysfs, op: Op, attr: &str, value: &str) -> Result<(), CliError> {
    sysfs
        .write(Module::InflateLoader, attr, value)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) if !sysfs.is_loaded(Module::InflateLoader) => {
                Module::InflateLoader.not_loaded()
            }
            Some(n) => errno::refusal(op, n),
            None => errno::refusal(op, libc::EIO),
        })
}

/// Sets the address (and key) and starts listening; returns the report.
fn listen(opts: &ReceiveOpts, sysfs: &Sysfs) -> Result<String, CliError> {
    sysfs.require(Module::InflateLoader)?;
    // clap guarantees --listen without --stop.
    let Some(ep) = opts.listen else {
        return Err(CliError::new(ExitClass::Usage, "--listen is required"));
    };
    let key = opts.key.as_deref().map(hexfile::read_key).transpose()?;
    write(sysfs, Op::Listen, "listen", &ep.to_string())?;
    if let Some(key) = &key {
        write(sysfs, Op::Key, "key", key)?;
    }
    write(sysfs, Op::Enable, "enable", "1")?;
    let state = sysfs
        .read(Module::InflateLoader, "status")
        .unwrap_or_else(|_| "unknown".into());
    let host = if ep.addr == [0, 0, 0, 0] {
        "ADDRESS-OF-THIS-VM".to_string()
    } else {
        let [a, b, c, d] = ep.addr;
        format!("{a}.{b}.{c}.{d}")
    };
    Ok(format!(
        "inflate_loader: {state} on {ep}{}\n\
         On the source guest: selfmig migrate --to {host}:{} --token FILE\n",
        if key.is_some() { " (key set)" } else { "" },
        ep.port
    ))
}

/// Stops listening; returns the report.
fn stop(sysfs: &Sysfs) -> Result<String, CliError> {
    sysfs.require(Module::InflateLoader)?;
    write(sysfs, Op::Disable, "enable", "0")?;
    Ok("inflate_loader: stopped listening\n".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use selfmig_proto::uapi::Endpoint;

    fn fake() -> (tempfile::TempDir, Sysfs) {
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        let m = Module::InflateLoader;
        std::fs::create_dir_all(sysfs.dir(m)).unwrap();
        for attr in ["listen", "key", "enable"] {
            std::fs::write(sysfs.attr(m, attr), "").unwrap();
        }
        std::fs::write(sysfs.attr(m, "status"), "listening\n").unwrap();
        (root, sysfs)
    }

    fn opts(key: Option<std::path::PathBuf>) -> ReceiveOpts {
        ReceiveOpts {
            listen: Some(Endpoint {
                addr: [0, 0, 0, 0],
                port: 7000,
            }),
            key,
            stop: false,
        }
    }

    #[test]
    fn writes_listen_key_enable() {
        let (root, sysfs) = fake();
        let key = root.path().join("keyfile");
        std::fs::write(&key, "000102030405060708090a0b0c0d0e0f\n").unwrap();
        let msg = listen(&opts(Some(key)), &sysfs).unwrap();
        let m = Module::InflateLoader;
        let read = |a| std::fs::read_to_string(sysfs.attr(m, a)).unwrap();
        assert_eq!(read("listen"), "0.0.0.0:7000\n");
        assert_eq!(read("key"), "000102030405060708090a0b0c0d0e0f\n");
        assert_eq!(read("enable"), "1\n");
        assert!(msg.starts_with("inflate_loader: listening on 0.0.0.0:7000 (key set)\n"));
        assert!(msg.contains("--to ADDRESS-OF-THIS-VM:7000"));
    }

    #[test]
    fn bad_key_writes_nothing() {
        let (root, sysfs) = fake();
        let key = root.path().join("keyfile");
        std::fs::write(&key, "0011\n").unwrap();
        let e = listen(&opts(Some(key)), &sysfs).unwrap_err();
        assert_eq!(e.class, ExitClass::Refused);
        assert_eq!(
            std::fs::read_to_string(sysfs.attr(Module::InflateLoader, "listen")).unwrap(),
            ""
        );
    }

    #[test]
    fn stop_writes_zero() {
        let (_root, sysfs) = fake();
        assert_eq!(stop(&sysfs).unwrap(), "inflate_loader: stopped listening\n");
        assert_eq!(
            std::fs::read_to_string(sysfs.attr(Module::InflateLoader, "enable")).unwrap(),
            "0\n"
        );
    }

    #[test]
    fn not_loaded() {
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        let e = listen(&opts(None), &sysfs).unwrap_err();
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.hint.unwrap().contains("insmod inflate_loader.ko"));
        assert_eq!(stop(&sysfs).unwrap_err().class, ExitClass::Environment);
    }
}
