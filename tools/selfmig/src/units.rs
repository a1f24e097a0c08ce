// SPDX-License-Identifier: GPL-2.0

//! Numbers as people read them: MiB, MiB/s, ms, s, dates.

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

/// 4 KiB pages in MiB with one decimal: `1024.0 MiB`.
pub fn pages_mib(pages: u64) -> String {
    format!("{:.1} MiB", pages as f64 / 256.0)
}

/// A unix time as a UTC date: `2027-01-15 08:00:00 UTC`.
pub fn utc(secs: u64) -> String {
    // Days to a civil date (H. Hinnant's algorithm), in i128 so that any
    // u64 works.
    let days = i128::from(secs / 86_400);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A span of seconds in its two largest units: `45s`, `12m 5s`, `1h 0m`,
/// `3d 4h`.
pub fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// When `expiry` is, seen at `now`: `2027-01-15 08:00:00 UTC, in 1h 0m`
/// or `..., 3m 2s ago`.
pub fn expiry(expiry: u64, now: u64) -> String {
    if expiry > now {
        format!("{}, in {}", utc(expiry), span(expiry - now))
    } else {
        format!("{}, {} ago", utc(expiry), span(now - expiry))
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
        assert_eq!(pages_mib(262_144), "1024.0 MiB");
        assert_eq!(pages_mib(384), "1.5 MiB");
    }

    #[test]
    fn dates_and_spans() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert!(utc(u64::MAX).ends_with(" UTC"));
        assert_eq!(span(0), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(725), "12m 5s");
        assert_eq!(span(3600), "1h 0m");
        assert_eq!(span(273_600), "3d 4h");
        assert_eq!(
            expiry(1_800_003_600, 1_800_000_000),
            "2027-01-15 09:00:00 UTC, in 1h 0m"
        );
        assert_eq!(
            expiry(1_800_000_000, 1_800_000_182),
            "2027-01-15 08:00:00 UTC, 3m 2s ago"
        );
        assert!(expiry(5, 5).ends_with(", 0s ago"));
    }
}
