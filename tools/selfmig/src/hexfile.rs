// SPDX-License-Identifier: GPL-2.0

//! Token and key files.
//!
//! Both hold hexadecimal text, exactly what the sysfs `token` and `key`
//! attributes accept (surrounding whitespace, such as a final newline, is
//! ignored), so `cat FILE > /sys/kernel/self_migrate/token` and
//! `selfmig migrate --token FILE` present the same token. They are decoded
//! with `proto`'s [`parse_hex_token`], the parser the modules use.
//!
//! `selfmig token mint` writes its token bundles in the same format (one
//! line of lowercase hex, [`encode`]) and reads the provider key's bytes
//! ([`read_key_bytes`]) to seal with.

use crate::crypto::Secret;
use crate::errno::{self, Op};
use crate::error::CliError;
use crate::exit::ExitClass;
use selfmig_proto::uapi::{self, parse_hex_token, ControlError, MAX_TOKEN_LEN};
use std::path::Path;

/// Largest file read: the longest token in hex, with room for whitespace.
const MAX_FILE_LEN: u64 = 4 * MAX_TOKEN_LEN as u64;

/// Reads `path`, refusing anything larger than [`MAX_FILE_LEN`]; a file that
/// cannot be read is a usage error.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        let mut err = CliError::new(
            ExitClass::Usage,
            format!(
                "cannot read {what} file {}: {}",
                path.display(),
                errno::describe(e.raw_os_error().unwrap_or(0))
            ),
        );
        if let Some(n) = e.raw_os_error() {
            err = err.with_errno(n);
        }
        err.with_hint(format!(
            "pass the path of a readable file holding the {what} in hexadecimal"
        ))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(unreadable)?;
    Ok(buf)
}

/// Decodes the hex text of a token file into the token's bytes.
pub fn decode_token(text: &[u8]) -> Result<Vec<u8>, ControlError> {
    let mut raw = vec![0u8; MAX_TOKEN_LEN];
    let len = parse_hex_token(text, &mut raw)?;
    raw.truncate(len);
    Ok(raw)
}

/// Reads the admission token from `path`.
pub fn read_token(path: &Path) -> Result<Vec<u8>, CliError> {
    let text = read(path, "token")?;
    decode_token(&text).map_err(|e| {
        CliError::new(
            errno::class_of(e),
            format!("token file {}: {}", path.display(), e.as_str()),
        )
        .with_errno(e.errno())
        .with_hint("write the token as hexadecimal digits, e.g. `00112233...`")
    })
}

/// Decodes the hex text of a key file as the loader would: 16, 24 or 32
/// bytes.
pub fn parse_key(text: &[u8]) -> Result<Secret, ControlError> {
    let mut raw = Secret::new(vec![0u8; MAX_TOKEN_LEN]);
    let len = parse_hex_token(text, raw.bytes_mut()).map_err(|_| ControlError::BadKeyLength)?;
    if !matches!(len, 16 | 24 | 32) {
        return Err(ControlError::BadKeyLength);
    }
    Ok(Secret::new(raw.bytes()[..len].to_vec()))
}

/// Checks the hex text of a key file as the loader would and returns it
/// trimmed, ready to be written to sysfs `key`.
pub fn check_key(text: &[u8]) -> Result<String, ControlError> {
    parse_key(text)?;
    // parse_hex_token accepted it, so the trimmed text is ASCII hex.
    Ok(String::from_utf8_lossy(uapi::trim(text)).into_owned())
}

/// The refusal of the key file at `path`.
fn bad_key(path: &Path) -> CliError {
    let mut err = errno::refusal(Op::Key, uapi::EINVAL);
    err.message = format!(
        "key file {}: {}",
        path.display(),
        ControlError::BadKeyLength.as_str()
    );
    err
}

/// Reads the provider key from `path`, as hex text for sysfs.
pub fn read_key(path: &Path) -> Result<String, CliError> {
    let text = Secret::new(read(path, "key")?);
    check_key(text.bytes()).map_err(|_| bad_key(path))
}

/// Reads the provider key from `path`, as its bytes (16, 24 or 32).
pub fn read_key_bytes(path: &Path) -> Result<Secret, CliError> {
    let text = Secret::new(read(path, "key")?);
    parse_key(text.bytes()).map_err(|_| bad_key(path))
}

/// `bytes` as lowercase hexadecimal text, as the token files hold them.
pub fn encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn token_is_decoded_like_sysfs() {
        assert_eq!(decode_token(b"00ff10\n"), Ok(vec![0x00, 0xff, 0x10]));
        assert_eq!(decode_token(b"  0A0b  "), Ok(vec![0x0a, 0x0b]));
        assert_eq!(decode_token(b""), Err(ControlError::BadToken));
        assert_eq!(decode_token(b"abc"), Err(ControlError::BadToken));
        assert_eq!(decode_token(b"zz"), Err(ControlError::BadToken));
        let long = "00".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            decode_token(long.as_bytes()),
            Err(ControlError::TokenTooLong)
        );
        let max = "ab".repeat(MAX_TOKEN_LEN);
        assert_eq!(decode_token(max.as_bytes()).unwrap().len(), MAX_TOKEN_LEN);
    }

    #[test]
    fn key_lengths() {
        let k16 = "00".repeat(16);
        assert_eq!(check_key(format!("{k16}\n").as_bytes()), Ok(k16));
        assert!(check_key("00".repeat(24).as_bytes()).is_ok());
        assert!(check_key("00".repeat(32).as_bytes()).is_ok());
        for bad in [
            "00".repeat(15),
            "00".repeat(33),
            "xyz".into(),
            String::new(),
        ] {
            assert_eq!(check_key(bad.as_bytes()), Err(ControlError::BadKeyLength));
        }
    }

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::File::create(&good)
            .unwrap()
            .write_all(b"0011\n")
            .unwrap();
        assert_eq!(read_token(&good).unwrap(), vec![0x00, 0x11]);

        let missing = read_token(&dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.class, ExitClass::Usage);
        assert_eq!(missing.errno, Some(libc::ENOENT));

        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"not hex").unwrap();
        let e = read_token(&bad).unwrap_err();
        assert_eq!(e.class, ExitClass::Refused);
        assert_eq!(e.errno, Some(uapi::EINVAL));

        let key = dir.path().join("key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        assert_eq!(read_key(&key).unwrap(), "0123456789abcdef0123456789abcdef");
        assert_eq!(
            read_key_bytes(&key).unwrap().bytes(),
            [
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef
            ]
        );
        std::fs::write(&key, "0011").unwrap();
        let e = read_key(&key).unwrap_err();
        assert_eq!(e.class, ExitClass::Refused);
        assert!(e.message.contains("16, 24 or 32"));
        assert_eq!(read_key_bytes(&key).unwrap_err(), e);
        let e = read_key_bytes(&dir.path().join("nope")).unwrap_err();
        assert_eq!(e.class, ExitClass::Usage);
    }

    #[test]
    fn key_bytes_and_hex() {
        for len in [16, 24, 32] {
            let text = format!("  {}\n", "a5".repeat(len));
            assert_eq!(parse_key(text.as_bytes()).unwrap().bytes(), vec![0xa5; len]);
        }
        assert!(parse_key(b"00").is_err());
        assert_eq!(encode(&[0x00, 0xab, 0x10, 0xff]), "00ab10ff");
        assert_eq!(encode(&[]), "");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_token(encode(&all).as_bytes()).unwrap(), all);
    }
}
