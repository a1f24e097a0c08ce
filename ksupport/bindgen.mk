# SPDX-License-Identifier: GPL-2.0
#
# Per-module bindings (the flag skip list mirrors 6.12's rust/Makefile):
# each module's `bindings_helper.h` is run through
# bindgen with the kernel's own bindgen parameters and C flags, so a module
# can reach the kernel APIs that the kernel crate's `bindings` does not cover
# (sysfs, misc devices, sockets, PM, ...) without patching the kernel.
# Included from a module's Kbuild; the crate root then declares
# `#[path = "bindings_generated.rs"] mod bindings;`. The output starts with
# ksupport/bindings_prelude.rs (lint allowances and blocklisted types).

selfmig_bindgen_skip_c_flags := -mno-fp-ret-in-387 -mpreferred-stack-boundary=% \
	-mskip-rax-setup -mgeneral-regs-only -msign-return-address=% \
	-mindirect-branch=thunk-extern -mindirect-branch-register \
	-mfunction-return=thunk-extern -mrecord-mcount -mabi=lp64 \
	-mindirect-branch-cs-prefix -mstack-protector-guard% -mtraceback=no \
	-mno-pointers-to-nested-functions -mno-string \
	-mno-strict-align -mstrict-align -mdirect-extern-access \
	-mexplicit-relocs -mno-check-zero-division \
	-fconserve-stack -falign-jumps=% -falign-loops=% \
	-femit-struct-debug-baseonly -fno-ipa-cp-clone -fno-ipa-sra \
	-fno-partial-inlining -fplugin-arg-arm_ssp_per_task_plugin-% \
	-fno-reorder-blocks -fno-allow-store-data-races -fasan-shadow-offset=% \
	-fzero-call-used-regs=% -fno-stack-clash-protection \
	-fno-inline-functions-called-once -fsanitize=bounds-strict \
	-fstrict-flex-arrays=% -fmin-function-alignment=% \
	-fzero-init-padding-bits=% -mno-fdpic \
	--param=% --param asan-% -fno-isolate-erroneous-paths-dereference

selfmig_ksupport := $(src)/../ksupport

# selfmig supports x86_64 only (see Documentation/selfmig/design.rst).
selfmig_bindgen_target := x86_64-linux-gnu

quiet_cmd_selfmig_bindgen = BINDGEN $@
      cmd_selfmig_bindgen = \
	$(BINDGEN) $< $(shell grep -Ev '^\#|^$$' $(srctree)/rust/bindgen_parameters) \
		--rust-target 1.68 --use-core --with-derive-default --ctypes-prefix ffi \
		--no-layout-tests --no-debug '.*' --enable-function-attribute-detection \
		-o $@.body -- $(filter-out $(selfmig_bindgen_skip_c_flags),$(c_flags)) \
		-w --target=$(selfmig_bindgen_target) -fno-builtin -D__BINDGEN__ -DMODULE && \
	cat $(selfmig_ksupport)/bindings_prelude.rs $@.body > $@ && rm -f $@.body

$(obj)/bindings_generated.rs: $(src)/bindings_helper.h $(srctree)/rust/bindgen_parameters \
		$(selfmig_ksupport)/bindings_prelude.rs FORCE
	$(call if_changed_dep,selfmig_bindgen)

targets += bindings_generated.rs
