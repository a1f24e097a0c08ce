// SPDX-License-Identifier: GPL-2.0

//! What a migration is asked to do, and its `struct selfmig_start`.

use selfmig_proto::uapi::{
    ControlError, Endpoint, StartArgs, DEFAULT_MAX_DOWNTIME_MS, START_NO_AUTO_CONVERGE,
    START_NO_COMPRESS, START_NO_REHEARSE, START_TRACKER_HASH, START_VERIFY,
};
use serde::Serialize;

/// The dirty tracker a migration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tracker {
    /// Hardware Dirty bits in the page tables (the module's default).
    #[default]
    Paging,
    /// A hash of every page, compared each round.
    Hash,
}

impl Tracker {
    /// The word sysfs and the report use.
    pub fn as_str(self) -> &'static str {
        match self {
            Tracker::Paging => "paging",
            Tracker::Hash => "hash",
        }
    }
}

/// A request to start a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    /// The target loader's endpoint.
    pub target: Endpoint,
    /// The admission token's bytes (may be empty: the kernel refuses that).
    pub token: Vec<u8>,
    /// Downtime target in milliseconds; `None` for the module's default.
    pub max_downtime_ms: Option<u32>,
    /// Whether the target verifies every page before resuming.
    pub verify: bool,
    /// Which dirty tracker to use.
    pub tracker: Tracker,
    /// Give up instead of throttling the dirtying tasks when pre-copy does
    /// not converge.
    pub no_auto_converge: bool,
    /// Send every page plain (no LZ4 compression).
    pub no_compress: bool,
    /// Connect without rehearsing the checkpoint first.
    pub no_rehearse: bool,
}

impl StartRequest {
    /// The `START_*` flags.
    pub fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.verify {
            flags |= START_VERIFY;
        }
        if self.tracker == Tracker::Hash {
            flags |= START_TRACKER_HASH;
        }
        if self.no_auto_converge {
            flags |= START_NO_AUTO_CONVERGE;
        }
        if self.no_compress {
            flags |= START_NO_COMPRESS;
        }
        if self.no_rehearse {
            flags |= START_NO_REHEARSE;
        }
        flags
    }

    /// The downtime target the module will use.
    pub fn effective_max_downtime_ms(&self) -> u32 {
        self.max_downtime_ms.unwrap_or(DEFAULT_MAX_DOWNTIME_MS)
    }

    /// The `struct selfmig_start` for this request. `token_ptr` points into
    /// `self.token`, so the structure is valid only while `self` is alive
    /// and unchanged.
    pub fn args(&self) -> StartArgs {
        StartArgs {
            size: StartArgs::SIZE as u32,
            flags: self.flags(),
            target: self.target,
            reserved0: 0,
            max_downtime_ms: self.max_downtime_ms.unwrap_or(0),
            token_len: u32::try_from(self.token.len()).unwrap_or(u32::MAX),
            token_ptr: self.token.as_ptr() as u64,
            reserved: [0; 4],
        }
    }

    /// Checks the request with the kernel's own rules, before the kernel
    /// is asked.
    pub fn validate(&self) -> Result<(), ControlError> {
        self.args().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use selfmig_proto::uapi::START_FLAGS_KNOWN;

    fn request() -> StartRequest {
        StartRequest {
            target: Endpoint {
                addr: [10, 77, 0, 3],
                port: 7000,
            },
            token: vec![1, 2, 3],
            max_downtime_ms: None,
            verify: false,
            tracker: Tracker::Paging,
            no_auto_converge: false,
            no_compress: false,
            no_rehearse: false,
        }
    }

    #[test]
    fn flags() {
        let mut r = request();
        assert_eq!(r.flags(), 0);
        r.verify = true;
        r.tracker = Tracker::Hash;
        assert_eq!(r.flags(), START_VERIFY | START_TRACKER_HASH);
        r.no_auto_converge = true;
        assert_eq!(
            r.flags(),
            START_VERIFY | START_TRACKER_HASH | START_NO_AUTO_CONVERGE
        );
        r.no_compress = true;
        assert_eq!(
            r.flags(),
            START_VERIFY | START_TRACKER_HASH | START_NO_AUTO_CONVERGE | START_NO_COMPRESS
        );
        r.no_rehearse = true;
        assert_eq!(r.flags(), START_FLAGS_KNOWN);
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn args_match_the_abi() {
        let mut r = request();
        r.max_downtime_ms = Some(200);
        let a = r.args();
        assert_eq!(a.size, 64);
        assert_eq!(a.max_downtime_ms, 200);
        assert_eq!(a.token_len, 3);
        assert_eq!(a.token_ptr, r.token.as_ptr() as u64);
        let b = StartArgs::from_bytes(&a.to_bytes());
        assert_eq!(a, b);
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(request().args().max_downtime_ms, 0);
        assert_eq!(
            request().effective_max_downtime_ms(),
            DEFAULT_MAX_DOWNTIME_MS
        );
    }

    #[test]
    fn validation_is_the_kernels() {
        let mut r = request();
        r.token.clear();
        assert_eq!(r.validate(), Err(ControlError::NoToken));
        let mut r = request();
        r.token = vec![0; 1025];
        assert_eq!(r.validate(), Err(ControlError::TokenTooLong));
    }
}
