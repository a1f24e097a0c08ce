# SPDX-License-Identifier: GPL-2.0
#
# selfmig: out-of-tree Rust kernel modules for guest self-migration.
#
#   make              build self_migrate.ko and inflate_loader.ko
#   make cli          build the selfmig command-line tool (static)
#   make fuzz         fuzz the loader's admission path (FUZZ_SECONDS, default 600)
#   make bench        selfmig against QEMU's own live migration (bench/run.sh)
#   make check        every test: cargo, kselftests in a guest, two-guest harness
#   make demo         a live guest migrates itself with the CLI; prints a report
#   make CLIPPY=1     build with clippy (must print no warnings)
#   make rust-analyzer  write rust-project.json for editors
#   make install      install both modules (= make modules_install) under
#                     /lib/modules/<release>/extra; INSTALL_MOD_DIR and
#                     INSTALL_MOD_PATH as for the kernel's modules_install
#   make toolcheck    check the tools a module build against KDIR needs
#   make dkms-check   build the tree with DKMS in a private DKMS tree
#
# KDIR defaults to the cached guest kernel built by scripts/build-kernel.sh
# (run on demand). Override it to build against another Rust-enabled tree.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
SHELL := /bin/bash

RUSTC ?= /usr/bin/rustc
BINDGEN ?= $(HOME)/.cargo/bin/bindgen
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
KMAKE = $(MAKE) -C $(KDIR) M=$(TOP) LLVM=1 RUSTC=$(RUSTC) BINDGEN=$(BINDGEN) \
	CLIPPY_DRIVER=$(CLIPPY_DRIVER) \
	$(if $(CLIPPY),CLIPPY=1)

ifeq ($(KDIR),)
KDIR_DEP := kernel
KDIR = $(shell cat $(TOP)/build/kdir 2>/dev/null)
endif

.PHONY: all modules kernel setup clean check demo cli fuzz bench rust-analyzer fmt fmt-check

all: modules

setup:
	@$(TOP)/scripts/setup.sh

# Resolve (and build if needed) the cached kernel; record where it is.
kernel: setup
	@mkdir -p $(TOP)/build
	@$(TOP)/scripts/build-kernel.sh > $(TOP)/build/kdir.new && \
		mv $(TOP)/build/kdir.new $(TOP)/build/kdir
	@echo "KDIR=$$(cat $(TOP)/build/kdir)"

modules: $(KDIR_DEP)
	$(KMAKE) modules

rust-analyzer: $(KDIR_DEP)
	$(KMAKE) rust-analyzer

clean:
	-[ -z "$(KDIR)" ] || $(KMAKE) clean
	rm -rf $(TOP)/build $(TOP)/proto/target $(TOP)/proto/fuzz/target \
		$(TOP)/tools/selfmig/target $(TOP)/tools/hostile/target \
		$(TOP)/tools/hostcrypto/target
	find $(TOP) -name bindings_generated.rs -delete

# rustfmt follows `mod` declarations, so the crate roots cover every file
# of the modules, ksupport/ and the proto/ files they include.
RUSTFMT_ROOTS := self_migrate/main.rs inflate_loader/inflate_loader.rs \
	proto/src/lib.rs proto/tests/*.rs tools/selfmig/src/main.rs \
	tools/selfmig/tests/*.rs tools/hostile/src/main.rs tools/hostcrypto/src/lib.rs

fmt:
	cd $(TOP) && rustfmt --edition 2021 --config-path .rustfmt.toml $(RUSTFMT_ROOTS)

fmt-check:
	cd $(TOP) && rustfmt --edition 2021 --config-path .rustfmt.toml --check $(RUSTFMT_ROOTS)

check: modules
	@$(TOP)/scripts/check.sh

cli:
	@$(TOP)/scripts/build-cli.sh

bench: modules
	@$(TOP)/bench/run.sh

FUZZ_SECONDS ?= 600
fuzz:
	@$(TOP)/proto/fuzz/run.sh $(FUZZ_SECONDS)

demo: modules
	@$(TOP)/scripts/demo.sh

# --- Installing and packaging (Documentation/selfmig/build.rst, Packaging) ---

# extra/: the modules are new, they override nothing in the kernel's tree.
INSTALL_MOD_DIR ?= extra

.PHONY: install modules_install toolcheck dkms-modules dkms-check

install: modules_install

modules_install: modules
	$(KMAKE) modules_install INSTALL_MOD_DIR=$(INSTALL_MOD_DIR)

# Everything a module build against KDIR needs, checked up front so that a
# build on a machine without it stops with a reason instead of deep inside
# Kbuild: a configured Rust-enabled tree with its Rust metadata, the very
# rustc the kernel was built with (the .rmeta files only load in it),
# bindgen (ksupport/bindgen.mk) and, for LLVM=1, clang and the LLVM tools.
toolcheck:
	@k='$(KDIR)'; rustc='$(RUSTC)'; bindgen='$(BINDGEN)'; bad=0; \
	fail() { echo "selfmig: $$*" >&2; bad=1; }; \
	warn() { echo "selfmig: warning: $$*" >&2; }; \
	conf() { sed -n "s/^$$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}$$/\1/p" "$$k/include/config/auto.conf"; }; \
	if [ -z "$$k" ] || [ ! -f "$$k/include/config/auto.conf" ]; then \
		echo "selfmig: KDIR='$$k' is not a configured kernel build tree" \
			"(no include/config/auto.conf); pass KDIR=/lib/modules/<release>/build" >&2; \
		exit 1; \
	fi; \
	rel=$$(cat "$$k/include/config/kernel.release" 2>/dev/null); \
	if [ "$$(conf CONFIG_RUST)" != y ]; then \
		echo "selfmig: kernel $$rel ($$k) is built without CONFIG_RUST=y;" \
			"selfmig needs a Rust-enabled kernel" >&2; \
		exit 1; \
	fi; \
	for f in rust/libkernel.rmeta rust/libmacros.so rust/bindgen_parameters scripts/target.json; do \
		[ -e "$$k/$$f" ] || fail "$$k/$$f missing: the build tree lacks the" \
			"kernel's Rust artefacts (distributions ship them in a separate" \
			"package, e.g. Ubuntu's linux-lib-rust-$$rel)"; \
	done; \
	want=$$(conf CONFIG_RUSTC_VERSION_TEXT); \
	if ! have=$$("$$rustc" --version 2>/dev/null); then \
		fail "rustc not found at RUSTC=$$rustc; install the '$$want' the kernel was built with"; \
	elif [ "$$have" != "$$want" ]; then \
		fail "RUSTC=$$rustc is '$$have', the kernel was built with '$$want';" \
			"the kernel's .rmeta files load only in that compiler"; \
	fi; \
	want=$$(conf CONFIG_BINDGEN_VERSION_TEXT); \
	if ! have=$$("$$bindgen" --version 2>/dev/null); then \
		fail "bindgen not found at BINDGEN=$$bindgen (bindgen-cli 0.65.1 or later)"; \
	elif [ -n "$$want" ] && [ "$$have" != "$$want" ]; then \
		warn "BINDGEN=$$bindgen is '$$have', the kernel used '$$want'"; \
	fi; \
	for t in clang ld.lld llvm-ar llvm-nm llvm-objcopy; do \
		command -v $$t >/dev/null || fail "$$t not found (LLVM=1 build: install clang, lld, llvm)"; \
	done; \
	[ "$$(conf CONFIG_CC_IS_CLANG)" = y ] || warn "kernel $$rel was built with" \
		"$$(conf CONFIG_CC_VERSION_TEXT), selfmig builds with LLVM=1 (clang); untested"; \
	[ $$bad = 0 ] || exit 1; \
	echo "selfmig: tools ready for $$rel: $$("$$rustc" --version), $$("$$bindgen" --version)"

# What dkms.conf runs. DKMS runs it from package hooks with a bare
# environment, so RUSTC and BINDGEN fall back to the ones on PATH when the
# defaults do not exist; KDIR must be given (never the project kernel).
dkms-modules: RUSTC := $(or $(wildcard $(RUSTC)),$(shell command -v rustc),$(RUSTC))
dkms-modules: BINDGEN := $(or $(wildcard $(BINDGEN)),$(shell command -v bindgen),$(BINDGEN))
dkms-modules: toolcheck
	$(KMAKE) modules

ifneq ($(filter dkms-modules,$(MAKECMDGOALS)),)
ifneq ($(KDIR_DEP),)
$(error dkms-modules builds against KDIR=<kernel build tree> only)
endif
endif

dkms-check: $(KDIR_DEP)
	@KDIR='$(KDIR)' $(TOP)/scripts/dkms-check.sh
