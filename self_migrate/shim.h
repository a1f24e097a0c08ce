/* SPDX-License-Identifier: GPL-2.0 */
/* Prototypes of shim.c, for shim.c itself and for bindgen. */
#ifndef SELF_MIGRATE_SHIM_H
#define SELF_MIGRATE_SHIM_H

unsigned long selfmig_free_block_pages(unsigned long pfn);
unsigned long selfmig_free_block_end(unsigned long pfn);
unsigned long selfmig_kaddr_to_pfn(const void *addr);
bool selfmig_page_unreferenced(unsigned long pfn);
unsigned long long selfmig_unreferenced_mask(unsigned long pfn, unsigned int count);
unsigned long selfmig_memmap_addr(unsigned long pfn);
int selfmig_page_kind(unsigned long pfn);
struct net_device;
void selfmig_dev_put(struct net_device *dev);
void selfmig_rcu_read_lock(void);
void selfmig_rcu_read_unlock(void);
struct task_struct;
struct task_struct *selfmig_next_task(struct task_struct *p);
struct task_struct *selfmig_next_thread(struct task_struct *p);
struct folio;
struct folio *selfmig_pfn_folio(unsigned long pfn);
bool selfmig_folio_try_get(struct folio *folio);
void selfmig_folio_put(struct folio *folio);
void selfmig_folio_lock(struct folio *folio);
void selfmig_dump_pfn(unsigned long pfn);
struct mm_struct;
struct mm_struct *selfmig_task_mm(struct task_struct *p);
void selfmig_task_sched(struct task_struct *p, unsigned int *policy, int *nice,
			unsigned int *rt_priority);
unsigned long selfmig_mm_pgd_pa(struct mm_struct *mm);
unsigned long selfmig_irq_save(void);
void selfmig_irq_restore(unsigned long flags);
void selfmig_get_task(struct task_struct *p);
void selfmig_put_task(struct task_struct *p);
struct virtio_device;
void selfmig_vqs_lock(struct virtio_device *vdev);
void selfmig_vqs_unlock(struct virtio_device *vdev);
struct device;
bool selfmig_pm_syscore(struct device *dev, bool skip);
void selfmig_pcp_for_each(void (*visit)(unsigned long pfn, unsigned int order, void *data),
			  void *data);


#endif
