// SPDX-License-Identifier: GPL-2.0

//! What an errno from the modules means to the user.
//!
//! A refusal of a control request (ioctl or sysfs write) is explained with
//! the [`ControlError`] texts of `proto`, the same words the module logs in
//! dmesg: for each operation, the refusals it can produce are listed and
//! matched by [`ControlError::errno`]. A failed migration is explained by
//! its errno and the reason in `stats`.

use crate::error::CliError;
use crate::exit::ExitClass;
use selfmig_proto::token;
use selfmig_proto::uapi::{self, ControlError};

/// The admin guide, where the kernel and guest requirements are.
pub const ADMIN_GUIDE: &str = "Documentation/selfmig/admin-guide.rst";

/// Symbolic names of the errno values selfmig can meet.
const NAMES: &[(i32, &str)] = &[
    (uapi::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (uapi::E2BIG, "E2BIG"),
    (uapi::EAGAIN, "EAGAIN"),
    (uapi::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (uapi::EFAULT, "EFAULT"),
    (uapi::EBUSY, "EBUSY"),
    (libc::ENODEV, "ENODEV"),
    (uapi::EINVAL, "EINVAL"),
    (uapi::ENOTTY, "ENOTTY"),
    (uapi::ENOSPC, "ENOSPC"),
    (uapi::ERANGE, "ERANGE"),
    (uapi::EPROTO, "EPROTO"),
    (uapi::EBADMSG, "EBADMSG"),
    (uapi::EDESTADDRREQ, "EDESTADDRREQ"),
    (uapi::EMSGSIZE, "EMSGSIZE"),
    (uapi::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
    (uapi::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::EADDRINUSE, "EADDRINUSE"),
    (uapi::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
    (libc::ENETDOWN, "ENETDOWN"),
    (libc::ENETUNREACH, "ENETUNREACH"),
    (uapi::ECONNABORTED, "ECONNABORTED"),
    (uapi::ECONNRESET, "ECONNRESET"),
    (uapi::ETIMEDOUT, "ETIMEDOUT"),
    (uapi::ECONNREFUSED, "ECONNREFUSED"),
    (libc::EHOSTUNREACH, "EHOSTUNREACH"),
    (uapi::EREMOTEIO, "EREMOTEIO"),
    (uapi::ECANCELED, "ECANCELED"),
    (uapi::ENOKEY, "ENOKEY"),
    (libc::EEXIST, "EEXIST"),
    (libc::EISDIR, "EISDIR"),
    (token::EKEYEXPIRED, "EKEYEXPIRED"),
    (token::EKEYREVOKED, "EKEYREVOKED"),
    (token::EKEYREJECTED, "EKEYREJECTED"),
];

/// The symbolic name of `errno`, e.g. `ECONNREFUSED`.
pub fn name(errno: i32) -> Option<&'static str> {
    NAMES.iter().find(|(e, _)| *e == errno).map(|(_, n)| *n)
}

/// `ENAME`, or `errno N` for a value without a known name.
pub fn label(errno: i32) -> String {
    match name(errno) {
        Some(n) => n.to_string(),
        None => format!("errno {errno}"),
    }
}

/// The C library's description of `errno`, e.g. `Connection refused`.
pub fn describe(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A control request that the modules can refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `SELFMIG_IOC_START`.
    Start,
    /// `SELFMIG_IOC_ABORT`.
    Abort,
    /// A write to `inflate_loader/listen`.
    Listen,
    /// A write to `inflate_loader/key`.
    Key,
    /// `1` written to `inflate_loader/enable`.
    Enable,
    /// `0` written to `inflate_loader/enable`.
    Disable,
}

impl Op {
    /// The refusals the kernel can answer this request with.
    fn refusals(self) -> &'static [ControlError] {
        use ControlError::*;
        match self {
            Op::Start => &[
                BadStructSize,
                UnknownFlags,
                ReservedNotZero,
                PortOutOfRange,
                NumberOutOfRange,
                UnusableAddress,
                TokenTooLong,
                NoToken,
                NoTarget,
                Busy,
                NoDevicePm,
                DmaOutsideTracker,
                BadUserPointer,
                OutOfMemory,
                UnknownCommand,
            ],
            Op::Abort => &[NotRunning, UnknownCommand],
            Op::Listen => &[BadEndpointSyntax, PortOutOfRange, UnusableAddress, Busy],
            Op::Key => &[BadKeyLength],
            Op::Enable => &[NoTarget, NoKey, Busy, NoDevicePm],
            Op::Disable => &[NotListening],
        }
    }

    /// What the request is, for messages.
    fn what(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Abort => "abort",
            Op::Listen => "setting the listen address",
            Op::Key => "setting the key",
            Op::Enable => "starting to listen",
            Op::Disable => "stopping the loader",
        }
    }
}

/// The refusals of `op` that answer with `errno`, most likely first.
pub fn refusals(op: Op, errno: i32) -> Vec<ControlError> {
    op.refusals()
        .iter()
        .copied()
        .filter(|e| e.errno() == errno)
        .collect()
}

/// The exit class of a refusal.
pub fn class_of(e: ControlError) -> ExitClass {
    use ControlError::*;
    match e {
        // This tool and the module disagree on the ABI, or the kernel lacks
        // what the module needs.
        BadStructSize | UnknownFlags | ReservedNotZero | UnknownCommand | NoDevicePm
        | NotSupported | DmaOutsideTracker => ExitClass::Environment,
        BadUserPointer | OutOfMemory => ExitClass::Failed,
        _ => ExitClass::Refused,
    }
}

/// The message for a refusal of `op`; the `proto` text where it fits.
fn message_of(op: Op, e: ControlError) -> &'static str {
    match (op, e) {
        (Op::Enable, ControlError::NoTarget) => "no listen address set",
        _ => e.as_str(),
    }
}

/// What to do after `op` was refused with `e`.
fn hint_of(op: Op, e: ControlError) -> Option<String> {
    use ControlError::*;
    let abi = "selfmig and the module come from different versions: build both from the \
               same tree (compare the module's sysfs `version` with `selfmig --version`)";
    Some(match (op, e) {
        (Op::Start | Op::Abort, UnknownCommand) => format!(
            "check that --dev names {}; if it does, {abi}",
            crate::device::DEFAULT_PATH
        ),
        (_, BadStructSize | UnknownFlags | ReservedNotZero | UnknownCommand) => abi.into(),
        (_, NoDevicePm) => format!(
            "rebuild the kernel with CONFIG_HIBERNATION=y; see {ADMIN_GUIDE}, \
             \"Preparing source and target guests\""
        ),
        (_, DmaOutsideTracker) => "use --tracker hash, or give every virtio device \
             iommu_platform=on and boot with swiotlb=force"
            .into(),
        (Op::Start, Busy) => {
            "watch it with `selfmig status` or stop it with `selfmig abort`".into()
        }
        (Op::Start, NoToken) => "pass --token FILE, the admission token in hexadecimal".into(),
        (Op::Start, TokenTooLong) => "the token file must hold at most 1024 bytes".into(),
        (Op::Start, UnusableAddress | PortOutOfRange) => {
            "give --to the target VM's own IPv4 address and the port its loader listens on".into()
        }
        (Op::Start, OutOfMemory) => "free memory in this guest and retry".into(),
        (Op::Start, BadUserPointer) => "this is a bug in selfmig; please report it".into(),
        (Op::Abort, NotRunning) => {
            "nothing to abort; `selfmig status` shows how the last migration ended".into()
        }
        (Op::Listen | Op::Enable, Busy) => {
            "the loader is listening already; stop it with `selfmig receive --stop` first".into()
        }
        (Op::Key, BadKeyLength) => {
            "the key file must hold 16, 24 or 32 bytes written as hexadecimal".into()
        }
        (Op::Enable, NoKey) => {
            "pass --key FILE, the provider key (16, 24 or 32 bytes in hexadecimal)".into()
        }
        (Op::Enable, NoTarget) => "pass --listen ADDR:PORT".into(),
        (Op::Disable, NotListening) => "the loader is not listening; nothing to stop".into(),
        _ => return None,
    })
}

/// Explains the kernel's refusal of `op` with `errno`.
pub fn refusal(op: Op, errno: i32) -> CliError {
    if errno == uapi::EPERM || errno == libc::EACCES {
        return CliError::new(
            ExitClass::Environment,
            format!("{}: permission denied", op.what()),
        )
        .with_errno(errno)
        .with_hint("run selfmig as root");
    }
    let found = refusals(op, errno);
    let Some(&first) = found.first() else {
        let class = match op {
            // Binding the listening socket failed: address not local, port
            // in use, ...
            Op::Enable => ExitClass::Environment,
            _ => ExitClass::Failed,
        };
        let err =
            CliError::new(class, format!("{}: {}", op.what(), describe(errno))).with_errno(errno);
        return match op {
            Op::Enable => err.with_hint(
                "choose a free port and an address of this VM (or 0.0.0.0); dmesg has the \
                 loader's reason",
            ),
            _ => err.with_hint("dmesg has the module's reason"),
        };
    };
    let text: Vec<&str> = found.iter().map(|&e| message_of(op, e)).collect();
    let mut err = refusal_of(op, first);
    err.message = format!("{} refused: {}", op.what(), text.join(", or "));
    err
}

/// Explains the refusal `e` of `op`, found by the kernel or by the same
/// check made here beforehand.
pub fn refusal_of(op: Op, e: ControlError) -> CliError {
    let mut err = CliError::new(
        class_of(e),
        format!("{} refused: {}", op.what(), message_of(op, e)),
    )
    .with_errno(e.errno());
    if let Some(h) = hint_of(op, e) {
        err = err.with_hint(h);
    }
    err
}

/// Explains a migration that ended in `failed` (or, with `aborted`, in
/// `aborted`) with `errno` (0 if the module gave none).
///
/// `reason` is `last_error` from `stats`, when it could be read;
/// `pages_sent` tells a refusal at admission (nothing sent yet) from a
/// failure later on.
pub fn migration_failure(
    aborted: bool,
    errno: i32,
    reason: Option<&str>,
    pages_sent: u64,
    target: &str,
) -> CliError {
    let reason = reason
        .filter(|r| !r.is_empty() && *r != "none")
        .map(str::to_string)
        .unwrap_or_else(|| match errno {
            0 => "no reason given".to_string(),
            e => describe(e),
        });
    let (class, hint): (ExitClass, String) = match errno {
        _ if aborted || errno == uapi::ECANCELED => (
            ExitClass::Aborted,
            "the guest carries on here; start again with `selfmig migrate` when ready".into(),
        ),
        uapi::ECONNREFUSED => (
            ExitClass::Refused,
            format!(
                "nothing listens at {target}: on the target run \
                 `selfmig receive --listen 0.0.0.0:PORT --key FILE`"
            ),
        ),
        uapi::EREMOTEIO if pages_sent == 0 => (
            ExitClass::Refused,
            format!(
                "the target did not admit this guest; both VMs must have the same shape \
                 (RAM, vCPUs, CPU model); see {ADMIN_GUIDE} and the target's dmesg"
            ),
        ),
        uapi::EREMOTEIO => (
            ExitClass::Failed,
            "the target gave up; `selfmig status` and dmesg on the target say why".into(),
        ),
        uapi::ENOSPC => (
            ExitClass::Failed,
            "the guest dirties memory faster than it can be sent: retry with a larger \
             --max-downtime or a quieter workload"
                .into(),
        ),
        uapi::EPROTO | uapi::EBADMSG | uapi::EPROTONOSUPPORT | uapi::EMSGSIZE => (
            ExitClass::Failed,
            "source and target must run the same selfmig build; compare their sysfs `version`"
                .into(),
        ),
        libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN => (
            ExitClass::Failed,
            format!("this guest has no route to {target}; check its network configuration"),
        ),
        uapi::ETIMEDOUT | uapi::ECONNRESET | uapi::ECONNABORTED => (
            ExitClass::Failed,
            "the connection to the target broke; the guest carries on here. Check the \
             network and the target's dmesg, then retry"
                .into(),
        ),
        _ => (
            ExitClass::Failed,
            "the guest carries on here; dmesg has the self_migrate lines that say why".into(),
        ),
    };
    let what = match class {
        ExitClass::Aborted => "migration aborted",
        ExitClass::Refused => "migration refused",
        _ => "migration failed",
    };
    let err = CliError::new(class, format!("{what}: {reason}")).with_hint(hint);
    match errno {
        0 => err,
        e => err.with_errno(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(name(uapi::ECONNREFUSED), Some("ECONNREFUSED"));
        assert_eq!(label(uapi::EOPNOTSUPP), "EOPNOTSUPP");
        assert_eq!(label(4095), "errno 4095");
        assert_eq!(describe(libc::ENOENT), "No such file or directory");
    }

    #[test]
    fn names_are_unique() {
        for (i, (e, _)) in NAMES.iter().enumerate() {
            assert!(
                NAMES[i + 1..].iter().all(|(o, _)| o != e),
                "errno {e} twice"
            );
        }
    }

    #[test]
    fn every_refusal_errno_has_a_name() {
        for op in [
            Op::Start,
            Op::Abort,
            Op::Listen,
            Op::Key,
            Op::Enable,
            Op::Disable,
        ] {
            for e in op.refusals() {
                assert!(name(e.errno()).is_some(), "{e:?}");
            }
        }
    }

    #[test]
    fn start_refusals_use_proto_texts() {
        let e = refusal(Op::Start, uapi::EBUSY);
        assert_eq!(e.class, ExitClass::Refused);
        assert_eq!(e.message, "start refused: a migration is already running");
        assert!(e.hint.unwrap().contains("selfmig abort"));

        let e = refusal(Op::Start, uapi::ENOKEY);
        assert_eq!(e.class, ExitClass::Refused);
        assert!(e.message.contains(ControlError::NoToken.as_str()));
    }

    #[test]
    fn missing_hibernation_points_at_admin_guide() {
        let e = refusal(Op::Start, uapi::EOPNOTSUPP);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.message.contains("CONFIG_HIBERNATION"));
        assert!(e.hint.unwrap().contains(ADMIN_GUIDE));
        let e = refusal(Op::Enable, uapi::EOPNOTSUPP);
        assert!(e.hint.unwrap().contains(ADMIN_GUIDE));
    }

    #[test]
    fn einval_on_start_is_an_abi_mismatch() {
        let e = refusal(Op::Start, uapi::EINVAL);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.message.contains("structure size mismatch"));
        assert!(e.message.contains("unknown flags"));
        assert!(e.hint.unwrap().contains("version"));
    }

    #[test]
    fn permission_is_environment() {
        for errno in [uapi::EPERM, libc::EACCES] {
            let e = refusal(Op::Listen, errno);
            assert_eq!(e.class, ExitClass::Environment);
            assert_eq!(e.hint.as_deref(), Some("run selfmig as root"));
        }
    }

    #[test]
    fn abort_with_nothing_running_is_refused() {
        let e = refusal(Op::Abort, uapi::EINVAL);
        assert_eq!(e.class, ExitClass::Refused);
        assert!(e.message.contains("no migration is running"));
    }

    #[test]
    fn loader_refusals() {
        let e = refusal(Op::Enable, uapi::EDESTADDRREQ);
        assert!(e.message.contains("no listen address set"));
        let e = refusal(Op::Enable, uapi::ENOKEY);
        assert!(e.hint.unwrap().contains("--key"));
        let e = refusal(Op::Listen, uapi::EBUSY);
        assert!(e.hint.unwrap().contains("receive --stop"));
        let e = refusal(Op::Enable, libc::EADDRINUSE);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.message.contains("Address already in use"));
        let e = refusal(Op::Disable, uapi::EINVAL);
        assert_eq!(e.class, ExitClass::Refused);
    }

    #[test]
    fn failure_classes() {
        let t = "10.0.0.2:7000";
        let c = |errno, pages| migration_failure(false, errno, None, pages, t).class;
        assert_eq!(c(uapi::ECANCELED, 10), ExitClass::Aborted);
        assert_eq!(c(uapi::ECONNREFUSED, 0), ExitClass::Refused);
        assert_eq!(c(uapi::EREMOTEIO, 0), ExitClass::Refused);
        assert_eq!(c(uapi::EREMOTEIO, 5), ExitClass::Failed);
        assert_eq!(c(uapi::ECONNRESET, 5), ExitClass::Failed);
        assert_eq!(c(uapi::ETIMEDOUT, 5), ExitClass::Failed);
        assert_eq!(c(uapi::ENOSPC, 5), ExitClass::Failed);
        assert_eq!(c(4000, 5), ExitClass::Failed);
        // The module's state decides an abort, whatever the errno.
        let e = migration_failure(true, uapi::ECONNRESET, None, 5, t);
        assert_eq!(e.class, ExitClass::Aborted);
        assert!(e.message.starts_with("migration aborted: "));
        let e = migration_failure(false, 0, None, 5, t);
        assert_eq!(e.errno, None);
        assert_eq!(e.message, "migration failed: no reason given");
    }

    #[test]
    fn failure_message_prefers_the_kernel_reason() {
        let e = migration_failure(
            false,
            uapi::EREMOTEIO,
            Some("target refused: RAM map differs"),
            0,
            "10.0.0.2:7000",
        );
        assert_eq!(
            e.message,
            "migration refused: target refused: RAM map differs"
        );
        let e = migration_failure(false, uapi::ECONNREFUSED, Some("none"), 0, "10.0.0.2:7000");
        assert_eq!(e.message, "migration refused: Connection refused");
        assert!(e.hint.unwrap().contains("10.0.0.2:7000"));
    }
}
