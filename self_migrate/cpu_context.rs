// SPDX-License-Identifier: GPL-2.0

//! The register context of the checkpoint.
//!
//! `selfmig_save_context(ctx, arg)` saves the callee-saved registers, the
//! stack pointer, the flags and its return address into `ctx`, calls
//! `selfmig_checkpoint_copy(arg)` and returns what that returns: like
//! `swsusp_arch_suspend()`, the image is copied *inside* the function that
//! saved the registers, so the frames above it are the same in the image as
//! in the saved context. A restored image comes back through the same return
//! address with 1 in `rax` (see `Documentation/selfmig/design.rst`).

use core::cell::UnsafeCell;
use core::ffi::c_void;

/// Registers saved at the checkpoint. The offsets are used by the assembly
/// below; keep them in sync.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(crate) struct SavedRegs {
    /// Stack pointer at entry (pointing at the return address).
    pub(crate) rsp: u64,
    /// Callee-saved registers.
    pub(crate) rbx: u64,
    /// Frame pointer.
    pub(crate) rbp: u64,
    /// Callee-saved registers.
    pub(crate) r12: u64,
    /// Callee-saved registers.
    pub(crate) r13: u64,
    /// Callee-saved registers.
    pub(crate) r14: u64,
    /// Callee-saved registers.
    pub(crate) r15: u64,
    /// Flags (interrupts are off).
    pub(crate) rflags: u64,
    /// Return address of `selfmig_save_context`.
    pub(crate) rip: u64,
    /// Page-table root.
    pub(crate) cr3: u64,
    /// GDT register (10 bytes, padded).
    pub(crate) gdtr: [u64; 2],
    /// IDT register (10 bytes, padded).
    pub(crate) idtr: [u64; 2],
    /// `MSR_GS_BASE`: this CPU's per-CPU area.
    pub(crate) gs_base: u64,
    /// `MSR_KERNEL_GS_BASE`.
    pub(crate) kernel_gs_base: u64,
    /// `MSR_FS_BASE`.
    pub(crate) fs_base: u64,
}

/// The saved registers, in module data (so they are part of the image).
pub(crate) struct ContextCell(UnsafeCell<SavedRegs>);

// SAFETY: Written only by `selfmig_save_context` on the one online CPU with
// interrupts disabled; read afterwards by the same thread.
unsafe impl Sync for ContextCell {}

/// The checkpoint's register context.
pub(crate) static CONTEXT: ContextCell = ContextCell(UnsafeCell::new(SavedRegs {
    rsp: 0,
    rbx: 0,
    rbp: 0,
    r12: 0,
    r13: 0,
    r14: 0,
    r15: 0,
    rflags: 0,
    rip: 0,
    cr3: 0,
    gdtr: [0; 2],
    idtr: [0; 2],
    gs_base: 0,
    kernel_gs_base: 0,
    fs_base: 0,
}));

core::arch::global_asm!(
    ".text",
    ".globl selfmig_save_context",
    ".type selfmig_save_context, @function",
    ".p2align 4",
    "selfmig_save_context:",
    "mov [rdi + 0x00], rsp",
    "mov [rdi + 0x08], rbx",
    "mov [rdi + 0x10], rbp",
    "mov [rdi + 0x18], r12",
    "mov [rdi + 0x20], r13",
    "mov [rdi + 0x28], r14",
    "mov [rdi + 0x30], r15",
    "pushfq",
    "pop qword ptr [rdi + 0x38]",
    "mov rax, [rsp]",
    "mov [rdi + 0x40], rax",
    "mov rax, cr3",
    "mov [rdi + 0x48], rax",
    "sgdt [rdi + 0x50]",
    "sidt [rdi + 0x60]",
    "mov ecx, 0xc0000101",
    "rdmsr",
    "mov [rdi + 0x70], eax",
    "mov [rdi + 0x74], edx",
    "mov ecx, 0xc0000102",
    "rdmsr",
    "mov [rdi + 0x78], eax",
    "mov [rdi + 0x7c], edx",
    "mov ecx, 0xc0000100",
    "rdmsr",
    "mov [rdi + 0x80], eax",
    "mov [rdi + 0x84], edx",
    "mov rdi, rsi",
    "sub rsp, 8",
    "call selfmig_checkpoint_copy",
    "add rsp, 8",
    "ret",
    ".size selfmig_save_context, . - selfmig_save_context",
    // The resume entry: the target's trampoline jumps here with the
    // source's CR3 in rcx, running on temporary page tables that map only
    // this page of the module. It is alone in its page.
    ".p2align 12",
    ".globl selfmig_resume_entry",
    ".type selfmig_resume_entry, @function",
    "selfmig_resume_entry:",
    "mov cr3, rcx",
    "mov rax, cr4",
    "mov rdx, rax",
    "and rax, -129",
    "mov cr4, rax",
    "mov cr4, rdx",
    "lea rdi, [rip + {ctx}]",
    "lgdt [rdi + 0x50]",
    "lidt [rdi + 0x60]",
    "mov ecx, 0xc0000101",
    "mov eax, [rdi + 0x70]",
    "mov edx, [rdi + 0x74]",
    "wrmsr",
    "mov ecx, 0xc0000102",
    "mov eax, [rdi + 0x78]",
    "mov edx, [rdi + 0x7c]",
    "wrmsr",
    "mov ecx, 0xc0000100",
    "mov eax, [rdi + 0x80]",
    "mov edx, [rdi + 0x84]",
    "wrmsr",
    "mov rsp, [rdi + 0x00]",
    "mov rbx, [rdi + 0x08]",
    "mov rbp, [rdi + 0x10]",
    "mov r12, [rdi + 0x18]",
    "mov r13, [rdi + 0x20]",
    "mov r14, [rdi + 0x28]",
    "mov r15, [rdi + 0x30]",
    "push qword ptr [rdi + 0x38]",
    "popfq",
    "mov eax, 1",
    "ret",
    ".size selfmig_resume_entry, . - selfmig_resume_entry",
    ".p2align 12",
    ctx = sym CONTEXT,
);

extern "C" {
    /// See the module documentation.
    fn selfmig_save_context(ctx: *mut SavedRegs, arg: *mut c_void) -> i64;
    /// Where a restored image enters (never called here).
    static selfmig_resume_entry: u8;
}

/// The address of the resume entry.
pub(crate) fn resume_entry() -> u64 {
    core::ptr::addr_of!(selfmig_resume_entry) as u64
}

/// Saves the register context and runs the checkpoint copy on `arg`.
/// Returns the copy's result (0 or a negative errno) when the image was
/// made here, and 1 when execution continues in a restored image.
///
/// # Safety
///
/// Interrupts must be disabled and this must be the only online CPU;
/// `arg` must be what `selfmig_checkpoint_copy` expects.
pub(crate) unsafe fn save_context(arg: *mut c_void) -> i64 {
    // SAFETY: By the function's safety requirements; `CONTEXT` is only
    // touched here.
    unsafe { selfmig_save_context(CONTEXT.0.get(), arg) }
}

/// The CR3 value saved at the checkpoint.
pub(crate) fn saved_cr3() -> u64 {
    // SAFETY: Read by the migration thread after the checkpoint, when no
    // one writes the context.
    unsafe { (*CONTEXT.0.get()).cr3 }
}
