/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel interfaces inflate_loader.ko reaches directly; bindgen turns these
 * into the module's `bindings` (see ksupport/bindgen.mk).
 */
#include <linux/kobject.h>
#include <linux/sysfs.h>
