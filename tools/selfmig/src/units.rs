// SPDX-License-Identifier: GPL-2.0

//! Numbers as people read them: MiB, MiB/s, ms, s.

use std::time::Duration;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// `bytes` in MiB with one decimal: `512.0 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

/// A bandwidth in MiB/s with one decimal: `62.1 MiB/s`.
pub fn mib_per_sec(bytes_per_sec: f64) -> String {
    format!("{:.1} MiB/s", bytes_per_sec / MIB)
}

/// Microseconds as milliseconds (`42.1 ms`), or as seconds from 10 s on.
pub fn us(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

/// Milliseconds as seconds with millisecond precision: `8.250 s`.
pub fn ms(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// An elapsed time as `M:SS` (or `H:MM:SS` from an hour on).
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(mib(0), "0.0 MiB");
        assert_eq!(mib(536_870_912), "512.0 MiB");
        assert_eq!(mib(1_572_864), "1.5 MiB");
        assert_eq!(mib_per_sec(65_011_712.0), "62.0 MiB/s");
        assert_eq!(us(42_117), "42.1 ms");
        assert_eq!(us(0), "0.0 ms");
        assert_eq!(us(12_345_678), "12.3 s");
        assert_eq!(ms(8250), "8.250 s");
        assert_eq!(ms(7), "0.007 s");
        assert_eq!(clock(Duration::from_secs(67)), "1:07");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }
}
