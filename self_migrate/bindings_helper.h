/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel interfaces self_migrate.ko reaches directly; bindgen turns these
 * into the module's `bindings` (see ksupport/bindgen.mk).
 */
#include <linux/fs.h>
#include <linux/in.h>
#include <linux/ioport.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/net.h>
#include <linux/numa.h>
#include <linux/socket.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <linux/uio.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <asm/pgtable.h>

#include "shim.h"
