# SPDX-License-Identifier: GPL-2.0
#
# selfmig: out-of-tree Rust kernel modules for guest self-migration.
#
#   make              build self_migrate.ko and inflate_loader.ko
#   make cli          build the selfmig command-line tool (static)
#   make fuzz         fuzz the loader's admission path (FUZZ_SECONDS, default 600)
#   make check        every test: cargo, kselftests in a guest, two-guest harness
#   make demo         a live guest migrates itself with the CLI; prints a report
#   make CLIPPY=1     build with clippy (must print no warnings)
#   make rust-analyzer  write rust-project.json for editors
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

.PHONY: all modules kernel setup clean check demo cli fuzz rust-analyzer fmt fmt-check

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
		$(TOP)/tools/selfmig/target
	find $(TOP) -name bindings_generated.rs -delete

# rustfmt follows `mod` declarations, so the crate roots cover every file
# of the modules, ksupport/ and the proto/ files they include.
RUSTFMT_ROOTS := self_migrate/main.rs inflate_loader/inflate_loader.rs \
	proto/src/lib.rs proto/tests/*.rs tools/selfmig/src/main.rs \
	tools/selfmig/tests/*.rs

fmt:
	cd $(TOP) && rustfmt --edition 2021 --config-path .rustfmt.toml $(RUSTFMT_ROOTS)

fmt-check:
	cd $(TOP) && rustfmt --edition 2021 --config-path .rustfmt.toml --check $(RUSTFMT_ROOTS)

check: modules
	@$(TOP)/scripts/check.sh

cli:
	@$(TOP)/scripts/build-cli.sh

FUZZ_SECONDS ?= 600
fuzz:
	@$(TOP)/proto/fuzz/run.sh $(FUZZ_SECONDS)

demo: modules
	@$(TOP)/scripts/demo.sh
