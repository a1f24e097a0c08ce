/* SPDX-License-Identifier: GPL-2.0 */
/* Prototypes of text_shim.c, for the loader's shim and for bindgen. */
#ifndef SELFMIG_TEXT_SHIM_H
#define SELFMIG_TEXT_SHIM_H

struct page;

pte_t *selfmig_kernel_pte_4k(unsigned long addr);
unsigned long selfmig_pte_pfn(const pte_t *ptep);
void selfmig_pte_set_pfn(pte_t *ptep, unsigned long pfn);
void *selfmig_vmap_rw(struct page **pages, unsigned int count);
bool selfmig_try_get_page(struct page *page);
void selfmig_put_page(struct page *page);

#endif
