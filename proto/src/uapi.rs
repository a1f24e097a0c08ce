// SPDX-License-Identifier: GPL-2.0

//! The `/dev/self_migrate` ioctl ABI and the errno values selfmig reports.
//!
//! The structures are extensible in the style of `clone3()`: each starts with
//! its own size, which the kernel checks against the size it knows. They are
//! laid out with explicit offsets and (de)serialised field by field, so the
//! kernel never reinterprets user memory as a Rust type.

/// Operation not permitted.
pub const EPERM: i32 = 1;
/// Argument list too long: a token larger than [`MAX_TOKEN_LEN`].
pub const E2BIG: i32 = 7;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// Bad address.
pub const EFAULT: i32 = 14;
/// Device or resource busy: a migration is already running.
pub const EBUSY: i32 = 16;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// Not a typewriter: unknown ioctl command.
pub const ENOTTY: i32 = 25;
/// Result too large: a number outside its allowed range.
pub const ERANGE: i32 = 34;
/// Protocol error.
pub const EPROTO: i32 = 71;
/// Bad message.
pub const EBADMSG: i32 = 74;
/// Destination address required: start without a target.
pub const EDESTADDRREQ: i32 = 89;
/// Message too long.
pub const EMSGSIZE: i32 = 90;
/// Protocol not supported.
pub const EPROTONOSUPPORT: i32 = 93;
/// Operation not supported: not implemented yet.
pub const EOPNOTSUPP: i32 = 95;
/// Cannot assign requested address.
pub const EADDRNOTAVAIL: i32 = 99;
/// No buffer space available.
pub const ENOSPC: i32 = 28;
/// Required key not available: start without a token.
pub const ENOKEY: i32 = 126;
/// Resource temporarily unavailable.
pub const EAGAIN: i32 = 11;
/// Software caused connection abort.
pub const ECONNABORTED: i32 = 103;
/// Connection reset by peer: the peer closed the stream.
pub const ECONNRESET: i32 = 104;
/// Connection timed out: the peer stayed silent too long.
pub const ETIMEDOUT: i32 = 110;
/// Connection refused: nothing listens at the target.
pub const ECONNREFUSED: i32 = 111;
/// Remote I/O error: the target refused the migration.
pub const EREMOTEIO: i32 = 121;
/// Operation canceled: aborted by the user.
pub const ECANCELED: i32 = 125;

/// Largest admission token in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Default and bounds of the downtime target, in milliseconds.
pub const DEFAULT_MAX_DOWNTIME_MS: u32 = 50;
/// Smallest accepted downtime target.
pub const MIN_MAX_DOWNTIME_MS: u32 = 1;
/// Largest accepted downtime target.
pub const MAX_MAX_DOWNTIME_MS: u32 = 60_000;

/// ioctl type byte of `/dev/self_migrate` (unassigned in
/// `Documentation/userspace-api/ioctl/ioctl-number.rst`).
pub const IOC_MAGIC: u32 = 0xB9;

/// ioctl direction bits: none.
const IOC_NONE: u32 = 0;
/// ioctl direction bits: user space writes.
const IOC_WRITE: u32 = 1;
/// ioctl direction bits: user space reads.
const IOC_READ: u32 = 2;

/// Encodes an ioctl command as `_IOC(dir, type, nr, size)` does.
pub const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}

/// Command number of [`IOC_START`].
pub const NR_START: u32 = 1;
/// Command number of [`IOC_STATUS`].
pub const NR_STATUS: u32 = 2;
/// Command number of [`IOC_ABORT`].
pub const NR_ABORT: u32 = 3;

/// `_IOW(0xB9, 1, struct selfmig_start)`: start a migration.
pub const IOC_START: u32 = ioc(IOC_WRITE, NR_START, StartArgs::SIZE);
/// `_IOR(0xB9, 2, struct selfmig_status)`: read progress and result.
pub const IOC_STATUS: u32 = ioc(IOC_READ, NR_STATUS, StatusArgs::SIZE);
/// `_IO(0xB9, 3)`: abort a running migration.
pub const IOC_ABORT: u32 = ioc(IOC_NONE, NR_ABORT, 0);

/// Splits a command into (type, nr, size).
pub const fn ioc_decode(cmd: u32) -> (u32, u32, usize) {
    (
        (cmd >> 8) & 0xff,
        cmd & 0xff,
        ((cmd >> 16) & 0x3fff) as usize,
    )
}

/// Start flag: send page hashes at the checkpoint; the target verifies
/// every restored page before resuming.
pub const START_VERIFY: u32 = 1 << 0;
/// Start flag: use the content-hash tracker instead of the paging tracker.
pub const START_TRACKER_HASH: u32 = 1 << 1;
/// Start flag: do not throttle the tasks that dirty memory faster than the
/// link sends it; give up instead (`auto_converge` 0).
pub const START_NO_AUTO_CONVERGE: u32 = 1 << 2;
/// Start flag: send every page plain, never LZ4-compressed (`compress` 0).
pub const START_NO_COMPRESS: u32 = 1 << 3;
/// Start flag: no rehearsal of the checkpoint before connecting
/// (`rehearse` 0).
pub const START_NO_REHEARSE: u32 = 1 << 4;
/// Every flag this ABI version knows.
pub const START_FLAGS_KNOWN: u32 = START_VERIFY
    | START_TRACKER_HASH
    | START_NO_AUTO_CONVERGE
    | START_NO_COMPRESS
    | START_NO_REHEARSE;

/// Why a control request was refused. Shared by sysfs and ioctl so both
/// report the same errno and the same dmesg reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlError {
    /// The address is not `a.b.c.d:port`.
    BadEndpointSyntax,
    /// The port is 0 or above 65535.
    PortOutOfRange,
    /// The address is unspecified, loopback, multicast or broadcast.
    UnusableAddress,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    TokenTooLong,
    /// The token is empty or not hexadecimal.
    BadToken,
    /// No target was set.
    NoTarget,
    /// No token was set.
    NoToken,
    /// A number did not parse.
    BadNumber,
    /// A number is outside its allowed range.
    NumberOutOfRange,
    /// A boolean was not `0`/`1`/`y`/`n`.
    BadBool,
    /// A name is not one of the allowed words.
    BadChoice,
    /// The ioctl structure's size field differs from the kernel's.
    BadStructSize,
    /// Unknown flags are set.
    UnknownFlags,
    /// Reserved fields are not zero.
    ReservedNotZero,
    /// A migration is already running.
    Busy,
    /// No migration is running.
    NotRunning,
    /// Not implemented yet.
    NotSupported,
    /// An ioctl command this ABI does not define.
    UnknownCommand,
    /// User memory could not be read or written.
    BadUserPointer,
    /// The kernel ran out of memory.
    OutOfMemory,
    /// A provider key that is not 16, 24 or 32 bytes (AES-128/192/256).
    BadKeyLength,
    /// No provider key was set.
    NoKey,
    /// The loader is not listening.
    NotListening,
    /// The kernel cannot freeze devices (built without `CONFIG_HIBERNATION`,
    /// so `CONFIG_HIBERNATE_CALLBACKS` is off and bus freeze callbacks are
    /// missing).
    NoDevicePm,
    /// A device writes guest memory in a way the paging tracker cannot see
    /// (no DMA API, or DMA not bounced through swiotlb).
    DmaOutsideTracker,
}

impl ControlError {
    /// The (positive) errno reported for this refusal.
    pub fn errno(&self) -> i32 {
        match self {
            ControlError::BadEndpointSyntax
            | ControlError::BadToken
            | ControlError::BadNumber
            | ControlError::BadBool
            | ControlError::BadChoice
            | ControlError::BadStructSize
            | ControlError::UnknownFlags
            | ControlError::ReservedNotZero
            | ControlError::BadKeyLength
            | ControlError::NotListening => EINVAL,
            ControlError::NoKey => ENOKEY,
            ControlError::PortOutOfRange | ControlError::NumberOutOfRange => ERANGE,
            ControlError::UnusableAddress => EADDRNOTAVAIL,
            ControlError::TokenTooLong => E2BIG,
            ControlError::NoTarget => EDESTADDRREQ,
            ControlError::NoToken => ENOKEY,
            ControlError::Busy => EBUSY,
            ControlError::NotRunning => EINVAL,
            ControlError::NotSupported
            | ControlError::NoDevicePm
            | ControlError::DmaOutsideTracker => EOPNOTSUPP,
            ControlError::UnknownCommand => ENOTTY,
            ControlError::BadUserPointer => EFAULT,
            ControlError::OutOfMemory => ENOMEM,
        }
    }

    /// The reason, as printed after the module name in dmesg.
    pub fn as_str(&self) -> &'static str {
        match self {
            ControlError::BadEndpointSyntax => "address must be IPv4 a.b.c.d:port",
            ControlError::PortOutOfRange => "port must be 1..65535",
            ControlError::UnusableAddress => {
                "address is unspecified, loopback, multicast or broadcast"
            }
            ControlError::TokenTooLong => "token longer than 1024 bytes",
            ControlError::BadToken => "token must be non-empty hexadecimal",
            ControlError::NoTarget => "no target set",
            ControlError::NoToken => "no token set",
            ControlError::BadNumber => "not a decimal number",
            ControlError::NumberOutOfRange => "number out of range",
            ControlError::BadBool => "expected 0 or 1",
            ControlError::BadChoice => "not one of the allowed values",
            ControlError::BadStructSize => "ioctl structure size mismatch",
            ControlError::UnknownFlags => "unknown flags set",
            ControlError::ReservedNotZero => "reserved fields must be zero",
            ControlError::Busy => "a migration is already running",
            ControlError::NotRunning => "no migration is running",
            ControlError::NotSupported => "not implemented yet",
            ControlError::UnknownCommand => "unknown ioctl command",
            ControlError::BadUserPointer => "bad user-space pointer",
            ControlError::OutOfMemory => "out of memory",
            ControlError::BadKeyLength => "key must be 16, 24 or 32 bytes of hexadecimal",
            ControlError::NoKey => "no provider key set",
            ControlError::NotListening => "not listening",
            ControlError::NoDevicePm => {
                "kernel built without CONFIG_HIBERNATION: devices cannot be frozen for a checkpoint"
            }
            ControlError::DmaOutsideTracker => {
                "a device's DMA escapes the paging tracker (the kernel log names it)"
            }
        }
    }
}

/// An IPv4 endpoint of a target loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// Address, most significant byte first.
    pub addr: [u8; 4],
    /// TCP port.
    pub port: u16,
}

impl core::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.addr;
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

impl Endpoint {
    /// Checks that the endpoint can name another machine.
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.port == 0 {
            return Err(ControlError::PortOutOfRange);
        }
        let a = self.addr;
        if a == [0, 0, 0, 0]
            || a == [255, 255, 255, 255]
            || a[0] == 127
            || (224..=239).contains(&a[0])
        {
            return Err(ControlError::UnusableAddress);
        }
        Ok(())
    }

    /// Checks that the endpoint can be listened on: any local address
    /// (including `0.0.0.0`), but not multicast or broadcast.
    pub fn validate_listen(&self) -> Result<(), ControlError> {
        if self.port == 0 {
            return Err(ControlError::PortOutOfRange);
        }
        let a = self.addr;
        if a == [255, 255, 255, 255] || (224..=239).contains(&a[0]) {
            return Err(ControlError::UnusableAddress);
        }
        Ok(())
    }

    /// Parses a target's `a.b.c.d:port` (surrounding whitespace allowed) and
    /// validates it with [`Endpoint::validate`].
    pub fn parse(input: &[u8]) -> Result<Self, ControlError> {
        let ep = Self::parse_syntax(input)?;
        ep.validate()?;
        Ok(ep)
    }

    /// Parses a listening endpoint and validates it with
    /// [`Endpoint::validate_listen`].
    pub fn parse_listen(input: &[u8]) -> Result<Self, ControlError> {
        let ep = Self::parse_syntax(input)?;
        ep.validate_listen()?;
        Ok(ep)
    }

    /// Parses `a.b.c.d:port` without judging the address.
    fn parse_syntax(input: &[u8]) -> Result<Self, ControlError> {
        let s = trim(input);
        let colon = s
            .iter()
            .position(|&c| c == b':')
            .ok_or(ControlError::BadEndpointSyntax)?;
        let (host, port) = (&s[..colon], &s[colon + 1..]);
        let mut addr = [0u8; 4];
        let mut parts = host.split(|&c| c == b'.');
        for octet in addr.iter_mut() {
            let part = parts.next().ok_or(ControlError::BadEndpointSyntax)?;
            if part.is_empty() || part.len() > 3 {
                return Err(ControlError::BadEndpointSyntax);
            }
            let v = parse_decimal(part).map_err(|_| ControlError::BadEndpointSyntax)?;
            *octet = u8::try_from(v).map_err(|_| ControlError::BadEndpointSyntax)?;
        }
        if parts.next().is_some() {
            return Err(ControlError::BadEndpointSyntax);
        }
        let port = match parse_decimal(port) {
            Ok(p) if p <= u16::MAX as u64 => p as u16,
            Ok(_) => return Err(ControlError::PortOutOfRange),
            Err(_) => return Err(ControlError::BadEndpointSyntax),
        };
        Ok(Endpoint { addr, port })
    }
}

/// Strips ASCII whitespace (a sysfs write usually ends in a newline).
pub fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// Parses a non-empty decimal number without sign.
pub fn parse_decimal(s: &[u8]) -> Result<u64, ControlError> {
    if s.is_empty() || s.len() > 19 {
        return Err(ControlError::BadNumber);
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(ControlError::BadNumber);
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Ok(v)
}

/// Parses a decimal sysfs value (whitespace-trimmed) in `[min, max]`.
pub fn parse_u32_in(input: &[u8], min: u32, max: u32) -> Result<u32, ControlError> {
    let v = parse_decimal(trim(input))?;
    if v < u64::from(min) || v > u64::from(max) {
        return Err(ControlError::NumberOutOfRange);
    }
    Ok(v as u32)
}

/// Parses a sysfs boolean: `0`, `1`, `y`, `n` (case-insensitive).
pub fn parse_bool(input: &[u8]) -> Result<bool, ControlError> {
    match trim(input) {
        b"1" | b"y" | b"Y" => Ok(true),
        b"0" | b"n" | b"N" => Ok(false),
        _ => Err(ControlError::BadBool),
    }
}

/// Decodes a hexadecimal token (whitespace-trimmed) into `out`, which should
/// hold [`MAX_TOKEN_LEN`] bytes; returns the token's length in bytes.
pub fn parse_hex_token(input: &[u8], out: &mut [u8]) -> Result<usize, ControlError> {
    let s = trim(input);
    if s.len() > 2 * MAX_TOKEN_LEN.min(out.len()) {
        return Err(ControlError::TokenTooLong);
    }
    if s.is_empty() || s.len() & 1 != 0 {
        return Err(ControlError::BadToken);
    }
    let nibble = |c: u8| -> Result<u8, ControlError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(ControlError::BadToken),
        }
    };
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(s.len() / 2)
}

/// Reads a native-endian `u32` at `off`.
fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Reads a native-endian `u64` at `off`.
fn get64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// `struct selfmig_start`, the argument of [`IOC_START`].
///
/// ```text
/// offset size field
///      0    4 size             sizeof(struct selfmig_start) = 64
///      4    4 flags            START_* flags
///      8    4 addr             IPv4 address, network byte order
///     12    2 port             TCP port, host byte order
///     14    2 reserved0        must be 0
///     16    4 max_downtime_ms  0 = default (50)
///     20    4 token_len        bytes at token_ptr, 1..=1024
///     24    8 token_ptr        user address of the token
///     32   32 reserved[4]      must be 0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartArgs {
    /// Size the caller believes the structure has.
    pub size: u32,
    /// `START_*` flags.
    pub flags: u32,
    /// Target endpoint.
    pub target: Endpoint,
    /// Must be zero.
    pub reserved0: u16,
    /// Downtime target; 0 selects the default.
    pub max_downtime_ms: u32,
    /// Token length in bytes.
    pub token_len: u32,
    /// User address of the token.
    pub token_ptr: u64,
    /// Must be zero.
    pub reserved: [u64; 4],
}

impl StartArgs {
    /// Size of the structure in this ABI version.
    pub const SIZE: usize = 64;

    /// Serialises the structure as user space passes it.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.size.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.target.addr);
        b[12..14].copy_from_slice(&self.target.port.to_ne_bytes());
        b[14..16].copy_from_slice(&self.reserved0.to_ne_bytes());
        b[16..20].copy_from_slice(&self.max_downtime_ms.to_ne_bytes());
        b[20..24].copy_from_slice(&self.token_len.to_ne_bytes());
        b[24..32].copy_from_slice(&self.token_ptr.to_ne_bytes());
        for (i, r) in self.reserved.iter().enumerate() {
            b[32 + 8 * i..40 + 8 * i].copy_from_slice(&r.to_ne_bytes());
        }
        b
    }

    /// Deserialises the structure.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut reserved = [0u64; 4];
        for (i, r) in reserved.iter_mut().enumerate() {
            *r = get64(b, 32 + 8 * i);
        }
        Self {
            size: get32(b, 0),
            flags: get32(b, 4),
            target: Endpoint {
                addr: [b[8], b[9], b[10], b[11]],
                port: u16::from_ne_bytes([b[12], b[13]]),
            },
            reserved0: u16::from_ne_bytes([b[14], b[15]]),
            max_downtime_ms: get32(b, 16),
            token_len: get32(b, 20),
            token_ptr: get64(b, 24),
            reserved,
        }
    }

    /// Checks every field that can be checked without touching user memory.
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.size as usize != Self::SIZE {
            return Err(ControlError::BadStructSize);
        }
        if self.flags & !START_FLAGS_KNOWN != 0 {
            return Err(ControlError::UnknownFlags);
        }
        if self.reserved0 != 0 || self.reserved.iter().any(|&r| r != 0) {
            return Err(ControlError::ReservedNotZero);
        }
        self.target.validate()?;
        if self.max_downtime_ms != 0
            && !(MIN_MAX_DOWNTIME_MS..=MAX_MAX_DOWNTIME_MS).contains(&self.max_downtime_ms)
        {
            return Err(ControlError::NumberOutOfRange);
        }
        if self.token_len as usize > MAX_TOKEN_LEN {
            return Err(ControlError::TokenTooLong);
        }
        if self.token_len == 0 {
            return Err(ControlError::NoToken);
        }
        Ok(())
    }
}

/// Migration states, as `status` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Nothing started.
    Idle = 0,
    /// Connecting to and being admitted by the target.
    Connecting = 1,
    /// Pre-copy rounds.
    Precopy = 2,
    /// Stopped for the checkpoint.
    Checkpoint = 3,
    /// Sending the rest and waiting for the target's confirmation.
    Committing = 4,
    /// Done: this guest now runs on the target.
    Migrated = 5,
    /// Failed before commit; the guest carries on here.
    Failed = 6,
    /// Aborted by the user before commit; the guest carries on here.
    Aborted = 7,
}

impl State {
    /// The state for a numeric value.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => State::Idle,
            1 => State::Connecting,
            2 => State::Precopy,
            3 => State::Checkpoint,
            4 => State::Committing,
            5 => State::Migrated,
            6 => State::Failed,
            7 => State::Aborted,
            _ => return None,
        })
    }

    /// The word `status` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Precopy => "precopy",
            State::Checkpoint => "checkpoint",
            State::Committing => "committing",
            State::Migrated => "migrated",
            State::Failed => "failed",
            State::Aborted => "aborted",
        }
    }

    /// Whether a migration is under way.
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            State::Connecting | State::Precopy | State::Checkpoint | State::Committing
        )
    }
}

/// `struct selfmig_status`, filled by [`IOC_STATUS`].
///
/// ```text
/// offset size field
///      0    4 size               sizeof(struct selfmig_status) = 80
///      4    4 state              State
///      8    4 round              current pre-copy round
///     12    4 last_errno         errno of the last failure, positive, or 0
///     16    8 pages_sent
///     24    8 bytes_sent
///     32    8 dirty_pages        pages dirtied in the last round
///     40    8 expected_downtime_us
///     48    8 downtime_us        measured downtime of the last migration
///     56    8 total_ms           duration of the last migration
///     64   16 reserved
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusArgs {
    /// Size of the structure.
    pub size: u32,
    /// Current state.
    pub state: State,
    /// Current pre-copy round.
    pub round: u32,
    /// Positive errno of the last failure, or 0.
    pub last_errno: u32,
    /// Pages sent so far.
    pub pages_sent: u64,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Pages dirtied in the last round.
    pub dirty_pages: u64,
    /// Expected downtime at the current dirty rate, in microseconds.
    pub expected_downtime_us: u64,
    /// Measured downtime of the last migration, in microseconds.
    pub downtime_us: u64,
    /// Duration of the last migration, in milliseconds.
    pub total_ms: u64,
}

impl StatusArgs {
    /// Size of the structure in this ABI version.
    pub const SIZE: usize = 80;

    /// A status with every counter zero.
    pub const fn idle() -> Self {
        Self {
            size: Self::SIZE as u32,
            state: State::Idle,
            round: 0,
            last_errno: 0,
            pages_sent: 0,
            bytes_sent: 0,
            dirty_pages: 0,
            expected_downtime_us: 0,
            downtime_us: 0,
            total_ms: 0,
        }
    }

    /// Serialises the structure.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        let words = [self.size, self.state as u32, self.round, self.last_errno];
        for (i, w) in words.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        let longs = [
            self.pages_sent,
            self.bytes_sent,
            self.dirty_pages,
            self.expected_downtime_us,
            self.downtime_us,
            self.total_ms,
        ];
        for (i, l) in longs.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&l.to_ne_bytes());
        }
        b
    }

    /// Deserialises the structure; `None` on an unknown state.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Option<Self> {
        Some(Self {
            size: get32(b, 0),
            state: State::from_u32(get32(b, 4))?,
            round: get32(b, 8),
            last_errno: get32(b, 12),
            pages_sent: get64(b, 16),
            bytes_sent: get64(b, 24),
            dirty_pages: get64(b, 32),
            expected_downtime_us: get64(b, 40),
            downtime_us: get64(b, 48),
            total_ms: get64(b, 56),
        })
    }
}
