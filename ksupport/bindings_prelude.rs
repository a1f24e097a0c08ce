// SPDX-License-Identifier: GPL-2.0

//! This module's own bindings, generated at build time by
//! `ksupport/bindgen.mk` from the module's `bindings_helper.h` with the
//! kernel's bindgen parameters, so layouts match the kernel built against.
//! Only the small safe wrappers in the module use them.

#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    unnecessary_transmutes
)]

use kernel::ffi;

/// Blocklisted by the kernel's bindgen parameters; defined as the kernel does.
type __kernel_size_t = usize;
/// Blocklisted by the kernel's bindgen parameters; defined as the kernel does.
type __kernel_ssize_t = isize;
/// Blocklisted by the kernel's bindgen parameters; defined as the kernel does.
type __kernel_ptrdiff_t = isize;

// Everything below is bindgen output.
