/* SPDX-License-Identifier: GPL-2.0 */
/* Prototypes of paging_shim.c, for the modules' shims and for bindgen. */
#ifndef SELFMIG_PAGING_SHIM_H
#define SELFMIG_PAGING_SHIM_H

unsigned long selfmig_cr3_pa(void);
bool selfmig_la57(void);
void selfmig_flush_tlb_all_local(void *unused);
bool selfmig_page_is_table(unsigned long pfn);
bool selfmig_direct_map_only(unsigned long pfn);
void selfmig_text_poke_probe(void);

#endif
