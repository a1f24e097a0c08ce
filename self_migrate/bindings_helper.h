/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel interfaces self_migrate.ko reaches directly; bindgen turns these
 * into the module's `bindings` (see ksupport/bindgen.mk).
 */
#include <crypto/aead.h>
#include <crypto/sha2.h>
#include <linux/cpu.h>
#include <linux/fs.h>
#include <linux/in.h>
#include <linux/ioport.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/net.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/pm.h>
#include <linux/console.h>
#include <linux/random.h>
#include <linux/reboot.h>
#include <linux/numa.h>
#include <linux/pci.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/types.h>
#include <uapi/linux/sched/types.h>
#include <linux/smp.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/scatterlist.h>
#include <linux/socket.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>
#include <linux/swiotlb.h>
#include <linux/sysfs.h>
#include <linux/delay.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/tcp.h>
#include <linux/timekeeping.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/xxhash.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <asm/fpu/api.h>
#include <asm/pgtable.h>
#include <asm/x86_init.h>

#include "shim.h"
#include "../ksupport/crypto_shim.h"
#include "../ksupport/paging_shim.h"

/* GFP_KERNEL is not a plain constant bindgen can evaluate. */
const gfp_t SELFMIG_GFP_KERNEL = GFP_KERNEL;

/*
 * Exported, but declared only in kernel/rcu/rcu.h (with TINY_RCU they are
 * empty inlines and not exported; the project kernel uses TREE_RCU).
 */
void rcu_expedite_gp(void);
void rcu_unexpedite_gp(void);

/* LZ4's work area size is a sizeof expression bindgen cannot evaluate. */
#include <linux/lz4.h>
const size_t SELFMIG_LZ4_MEM_COMPRESS = LZ4_MEM_COMPRESS;
