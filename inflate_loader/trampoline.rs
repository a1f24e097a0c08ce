// SPDX-License-Identifier: GPL-2.0

//! The restore trampoline: position-independent code that runs from a spare
//! frame of the image, switches to the temporary page tables, copies the
//! slotted pages home, and jumps to the source's resume entry (the
//! counterpart of `core_restore_code` in `arch/x86/power/hibernate_asm_64.S`).
//!
//! Entry: `rdi` temporary CR3, `rsi` first copy-list page (direct-map
//! address), `rdx` the source's CR3, `rcx` the source's resume entry. A
//! copy-list page holds the next page's address, a count, then that many
//! (source, destination) direct-map address pairs. It uses no stack and
//! touches no memory but the list, the slots and the destinations.

// Assembled into read-only data: it only runs from the copy made in a spare
// frame, never in place (objtool would rightly call it unreachable code).
core::arch::global_asm!(
    ".pushsection .rodata",
    ".globl selfmig_trampoline_start",
    ".globl selfmig_trampoline_end",
    ".p2align 4",
    "selfmig_trampoline_start:",
    "mov r8, rcx",
    "mov r9, rdx",
    "mov cr3, rdi",
    // Flush global TLB entries too (and every PCID): toggle CR4.PGE.
    "mov rax, cr4",
    "mov r10, rax",
    "and rax, -129",
    "mov cr4, rax",
    "mov cr4, r10",
    "mov r11, rsi",
    "2:",
    "test r11, r11",
    "jz 5f",
    "mov rdx, [r11 + 8]",
    "lea r10, [r11 + 16]",
    "3:",
    "test rdx, rdx",
    "jz 4f",
    "mov rsi, [r10]",
    "mov rdi, [r10 + 8]",
    "mov ecx, 512",
    "rep movsq",
    "add r10, 16",
    "dec rdx",
    "jmp 3b",
    "4:",
    "mov r11, [r11]",
    "jmp 2b",
    "5:",
    "mov rcx, r9",
    "jmp r8",
    "selfmig_trampoline_end:",
    ".popsection",
);

extern "C" {
    /// First byte of the trampoline.
    static selfmig_trampoline_start: u8;
    /// One past its last byte.
    static selfmig_trampoline_end: u8;
}

/// The trampoline's machine code.
pub(crate) fn code() -> &'static [u8] {
    // SAFETY: Both symbols delimit the assembly above, in this module's
    // read-only data, which stays mapped while the module is loaded.
    unsafe {
        let start = core::ptr::addr_of!(selfmig_trampoline_start);
        let end = core::ptr::addr_of!(selfmig_trampoline_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}
