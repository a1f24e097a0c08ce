// SPDX-License-Identifier: GPL-2.0

//! The RAM map of a machine from its `/proc/iomem`, exactly as the loader
//! builds its own (`ksupport/machine.rs`).
//!
//! The loader walks the iomem tree with `walk_iomem_res_desc()` for busy
//! System RAM resources: the walk takes the first matching resource (in
//! tree order, which is the file's order) that ends at or after a cursor,
//! clips it to start at the cursor, and moves the cursor past its end, so
//! System RAM nested in System RAM is never counted twice. Each resource
//! becomes the frames wholly inside it, `ceil(start / 4096)` to
//! `(end + 1) / 4096`, and `MachineDesc::push_range` merges ranges that
//! touch. The file names busy System RAM "System RAM".

use selfmig_proto::machine::RamRange;
use selfmig_proto::wire::PAGE_SIZE;

/// The frame ranges of every "System RAM" line of `text`, in order, before
/// merging (`MachineDesc::push_range` merges touching ones, as in the
/// kernel).
pub fn ram_ranges(text: &str) -> Result<Vec<RamRange>, String> {
    let page = PAGE_SIZE as u64;
    let mut ranges = Vec::new();
    let mut cursor = 0u64;
    for line in text.lines() {
        let Some((span, name)) = line.trim_start().split_once(" : ") else {
            continue;
        };
        if name.trim_end() != "System RAM" {
            continue;
        }
        let (start, end) = span
            .split_once('-')
            .and_then(|(s, e)| {
                Some((
                    u64::from_str_radix(s, 16).ok()?,
                    u64::from_str_radix(e, 16).ok()?,
                ))
            })
            .ok_or_else(|| format!("iomem: cannot read the line '{line}'"))?;
        if end == 0 {
            return Err("iomem: addresses are hidden (read /proc/iomem as root)".into());
        }
        if end < cursor {
            continue;
        }
        let start = start.max(cursor);
        cursor = end.saturating_add(1);
        let (start_pfn, end_pfn) = (start.div_ceil(page), end.saturating_add(1) / page);
        if end_pfn > start_pfn {
            ranges.push(RamRange {
                start_pfn,
                nr_pages: end_pfn - start_pfn,
            });
        }
    }
    if ranges.is_empty() {
        return Err("iomem: no System RAM".into());
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 512 MiB QEMU q35 guest's `/proc/iomem`, abridged.
    const QEMU: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-1ffdffff : System RAM
  01000000-01bfffff : Kernel code
  01c00000-0201ffff : Kernel rodata
1ffe0000-1fffffff : Reserved
b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]
fed00000-fed003ff : HPET 0
";

    fn r(start_pfn: u64, nr_pages: u64) -> RamRange {
        RamRange {
            start_pfn,
            nr_pages,
        }
    }

    #[test]
    fn qemu_guest() {
        // 0x1000..0x9fc00: frames 1 to 0x9f (the last partial page is
        // not RAM); 0x100000..0x1ffe0000: frames 0x100 to 0x1ffe0.
        assert_eq!(
            ram_ranges(QEMU).unwrap(),
            [r(1, 0x9e), r(0x100, 0x1ffe0 - 0x100)]
        );
    }

    #[test]
    fn partial_pages_and_nesting() {
        let text = "\
00000800-00002fff : System RAM
  00001000-00001fff : System RAM
00003000-000037ff : System RAM
00004000-00004fff : Reserved
  00004000-00004fff : System RAM
";
        // The first line's first half page is not a frame; the nested
        // System RAM is inside the walk's cursor; a half page is no frame;
        // System RAM under another resource counts (the walk descends).
        assert_eq!(ram_ranges(text).unwrap(), [r(1, 2), r(4, 1)]);
    }

    #[test]
    fn hidden_and_empty() {
        let hidden = "00000000-00000000 : System RAM\n";
        assert!(ram_ranges(hidden).unwrap_err().contains("root"));
        assert!(ram_ranges("00000000-00000fff : Reserved\n").is_err());
        assert!(ram_ranges("zz-1000 : System RAM\n").is_err());
    }
}
