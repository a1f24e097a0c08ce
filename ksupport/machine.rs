// SPDX-License-Identifier: GPL-2.0

//! The description of the machine this kernel runs on.

use crate::bindings;
use crate::proto::machine::{MachineDesc, RamRange, CPU_FEATURE_WORDS};
use core::arch::x86_64::__cpuid_count;
use core::ffi::c_void;
use kernel::prelude::*;

/// Adds one System RAM resource to the description behind `arg`.
///
/// # Safety
///
/// `res` must be a live resource and `arg` a `*mut Walk`, as
/// `walk_iomem_res_desc()` passes from [`describe`].
unsafe extern "C" fn add_ram(res: *mut bindings::resource, arg: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let (res, walk) = unsafe { (&*res, &mut *arg.cast::<Walk>()) };
    let start_pfn = res.start.div_ceil(4096);
    let end_pfn = (res.end + 1) / 4096;
    if end_pfn <= start_pfn {
        return 0;
    }
    match walk.desc.push_range(RamRange {
        start_pfn,
        nr_pages: end_pfn - start_pfn,
    }) {
        Ok(()) => 0,
        Err(_) => {
            walk.failed = true;
            1
        }
    }
}

/// State of the RAM walk.
struct Walk {
    desc: MachineDesc,
    failed: bool,
}

/// CPUID feature words: leaf 1 ECX and EDX, leaf 7.0 EBX and ECX.
fn cpu_features() -> [u32; CPU_FEATURE_WORDS] {
    let (l1, l7) = (__cpuid_count(1, 0), __cpuid_count(7, 0));
    // Leaf 1 ECX bit 27 (OSXSAVE) mirrors CR4, not the CPU; mask it.
    [l1.ecx & !(1 << 27), l1.edx, l7.ebx, l7.ecx]
}

/// Describes this machine: RAM map, vCPUs, paging depth, CPU features.
pub(crate) fn describe() -> Result<MachineDesc> {
    // SAFETY: Plain reads of variables set at boot and never changed after.
    let (vcpus, pgdir_shift) = unsafe { (bindings::nr_cpu_ids, bindings::pgdir_shift) };
    let levels = if pgdir_shift == 48 { 5 } else { 4 };
    let mut walk = Walk {
        desc: MachineDesc::new(vcpus, levels, cpu_features()),
        failed: false,
    };
    // SAFETY: `add_ram` matches the callback type and gets `&mut walk`,
    // which outlives the call.
    unsafe {
        bindings::walk_iomem_res_desc(
            bindings::IORES_DESC_NONE as _,
            (bindings::IORESOURCE_SYSTEM_RAM | bindings::IORESOURCE_BUSY) as _,
            0,
            u64::MAX,
            (&mut walk as *mut Walk).cast(),
            Some(add_ram),
        )
    };
    if walk.failed || walk.desc.ranges().is_empty() {
        pr_err!("cannot describe the RAM map (more than 16 ranges?)\n");
        return Err(E2BIG);
    }
    Ok(walk.desc)
}
