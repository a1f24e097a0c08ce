// SPDX-License-Identifier: GPL-2.0

//! The restore trampoline: position-independent code that runs from a spare
//! frame of the image, switches to the temporary page tables, copies the
//! slotted pages home, and jumps to the source's resume entry (the
//! counterpart of `core_restore_code` in `arch/x86/power/hibernate_asm_64.S`).
//!
//! Entry: `rdi` temporary CR3, `rsi` first copy-list page (direct-map
//! address), `rdx` the source's CR3, `rcx` the source's resume entry, `r8`
//! where to store two time-stamp counter readings (at entry, after the
//! copy) and the number of pages it found already in place: the hand-off
//! page's stamp words at home, see `proto::handoff`. A
//! copy-list page holds the next page's address, a count, then that many
//! (source, destination) direct-map address pairs. It uses no stack and
//! touches no memory but the list, the slots and the destinations; it
//! clobbers every general-purpose register (it never returns).

// Assembled into read-only data: it only runs from the copy made in a spare
// frame, never in place (objtool would rightly call it unreachable code).
core::arch::global_asm!(
    ".pushsection .rodata",
    ".globl selfmig_trampoline_start",
    ".globl selfmig_trampoline_end",
    ".p2align 4",
    "selfmig_trampoline_start:",
    "mov r14, rcx",
    "mov r15, rdx",
    "mov r13, r8",
    "xor r8d, r8d",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov r9, rax",
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
    // Compare first: a page already holding the right bytes (kernel text
    // when both sides run the same build) is left alone. Writes cost more
    // than reads where the destination held code that ran (an emulator
    // must invalidate what it translated), and on hardware a read of the
    // destination is cheap next to the copy.
    "xor ecx, ecx",
    // 64 bytes per iteration: the differences of eight words are or-ed
    // together, one branch per block (an emulator pays per branch as well
    // as per access).
    "7:",
    "mov rax, [rsi + rcx]",
    "xor rax, [rdi + rcx]",
    "mov rbx, [rsi + rcx + 8]",
    "xor rbx, [rdi + rcx + 8]",
    "or rax, rbx",
    "mov rbx, [rsi + rcx + 16]",
    "xor rbx, [rdi + rcx + 16]",
    "or rax, rbx",
    "mov rbx, [rsi + rcx + 24]",
    "xor rbx, [rdi + rcx + 24]",
    "or rax, rbx",
    "mov rbx, [rsi + rcx + 32]",
    "xor rbx, [rdi + rcx + 32]",
    "or rax, rbx",
    "mov rbx, [rsi + rcx + 40]",
    "xor rbx, [rdi + rcx + 40]",
    "or rax, rbx",
    "mov rbx, [rsi + rcx + 48]",
    "xor rbx, [rdi + rcx + 48]",
    "or rax, rbx",
    "mov rbx, [rsi + rcx + 56]",
    "xor rbx, [rdi + rcx + 56]",
    "or rax, rbx",
    "jnz 8f",
    "add ecx, 64",
    "cmp ecx, 4096",
    "jb 7b",
    "inc r8",
    "jmp 9f",
    // From the 64-byte block holding the first difference to the end of
    // the page (ecx is a multiple of 64), 64 bytes per iteration through
    // registers.
    "8:",
    "add rsi, rcx",
    "add rdi, rcx",
    "neg ecx",
    "add ecx, 4096",
    "shr ecx, 6",
    "6:",
    "mov rax, [rsi]",
    "mov rbx, [rsi + 8]",
    "mov rbp, [rsi + 16]",
    "mov r12, [rsi + 24]",
    "mov [rdi], rax",
    "mov [rdi + 8], rbx",
    "mov [rdi + 16], rbp",
    "mov [rdi + 24], r12",
    "mov rax, [rsi + 32]",
    "mov rbx, [rsi + 40]",
    "mov rbp, [rsi + 48]",
    "mov r12, [rsi + 56]",
    "mov [rdi + 32], rax",
    "mov [rdi + 40], rbx",
    "mov [rdi + 48], rbp",
    "mov [rdi + 56], r12",
    "add rsi, 64",
    "add rdi, 64",
    "dec ecx",
    "jnz 6b",
    "9:",
    "add r10, 16",
    "dec rdx",
    "jmp 3b",
    "4:",
    "mov r11, [r11]",
    "jmp 2b",
    "5:",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [r13], r9",
    "mov [r13 + 8], rax",
    "mov [r13 + 16], r8",
    "mov rcx, r15",
    "jmp r14",
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
