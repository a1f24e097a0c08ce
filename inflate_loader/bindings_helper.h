/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel interfaces inflate_loader.ko reaches directly; bindgen turns these
 * into the module's `bindings` (see ksupport/bindgen.mk).
 */
#include <crypto/aead.h>
#include <crypto/sha2.h>
#include <linux/cpu.h>
#include <linux/gfp.h>
#include <linux/in.h>
#include <linux/ioport.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/net.h>
#include <linux/pm.h>
#include <linux/smp.h>
#include <linux/random.h>
#include <linux/numa.h>
#include <linux/pci.h>
#include <linux/device.h>
#include <linux/virtio.h>
#include <linux/scatterlist.h>
#include <linux/socket.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <linux/uio.h>
#include <linux/stop_machine.h>
#include <linux/vmalloc.h>
#include <linux/xxhash.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <linux/tcp.h>
#include <asm/pgtable.h>
#include <asm/tlbflush.h>
#include <asm/tsc.h>

#include "../ksupport/crypto_shim.h"
#include "../ksupport/socket_shim.h"
#include "../ksupport/paging_shim.h"
#include "text_shim.h"

/* Where modules' code and data are mapped (relocate.rs). */
const unsigned long SELFMIG_MODULES_VADDR = MODULES_VADDR;
const unsigned long SELFMIG_MODULES_END = MODULES_END;

/* GFP_KERNEL is not a plain constant bindgen can evaluate. */
const gfp_t SELFMIG_GFP_KERNEL = GFP_KERNEL;

/* Flags for claiming the target's free memory: fail rather than reclaim
 * hard, warn or dip into reserves. */
const gfp_t SELFMIG_GFP_CLAIM = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC;

/* The same for single frames taken from the movable free lists, smallest
 * blocks first (an unmovable request that finds its own lists empty steals
 * from the largest blocks instead). */
const gfp_t SELFMIG_GFP_CLAIM_SMALL = GFP_KERNEL | __GFP_MOVABLE | __GFP_NORETRY | __GFP_NOWARN |
				      __GFP_NOMEMALLOC;

/*
 * Exported, but declared only in kernel/rcu/rcu.h (with TINY_RCU they are
 * empty inlines and not exported; the project kernel uses TREE_RCU).
 */
void rcu_expedite_gp(void);
void rcu_unexpedite_gp(void);

/* LZ4's work area size is a sizeof expression bindgen cannot evaluate. */
#include <linux/lz4.h>
const size_t SELFMIG_LZ4_MEM_COMPRESS = LZ4_MEM_COMPRESS;
