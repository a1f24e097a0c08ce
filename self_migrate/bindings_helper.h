/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel interfaces self_migrate.ko reaches directly; bindgen turns these
 * into the module's `bindings` (see ksupport/bindgen.mk).
 */
#include <linux/fs.h>
#include <linux/kobject.h>
#include <linux/miscdevice.h>
#include <linux/sysfs.h>
