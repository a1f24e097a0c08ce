/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of crypto_shim.c, for the shim itself and for bindgen (each
 * module's bindings_helper.h includes this header).
 */
#ifndef SELFMIG_CRYPTO_SHIM_H
#define SELFMIG_CRYPTO_SHIM_H

#include <crypto/aead.h>
#include <crypto/sha2.h>
#include <linux/scatterlist.h>

struct aead_request *selfmig_aead_request_alloc(struct crypto_aead *tfm, gfp_t gfp);
void selfmig_aead_request_free(struct aead_request *req);
void selfmig_aead_request_set_callback(struct aead_request *req, u32 flags,
				       crypto_completion_t compl, void *data);
void selfmig_aead_request_set_crypt(struct aead_request *req, struct scatterlist *src,
				    struct scatterlist *dst, unsigned int cryptlen, u8 *iv);
void selfmig_aead_request_set_ad(struct aead_request *req, unsigned int assoclen);
void selfmig_crypto_free_aead(struct crypto_aead *tfm);
void selfmig_sg_set_page(struct scatterlist *sg, struct page *page, unsigned int len,
			 unsigned int offset);
void selfmig_sg_mark_end(struct scatterlist *sg);
struct page *selfmig_virt_to_page(const void *kvaddr);
void selfmig_sha256_init(struct sha256_state *sctx);
void selfmig_crypto_init_wait(struct crypto_wait *wait);
int selfmig_crypto_wait_req(int err, struct crypto_wait *wait);
const char *selfmig_crypto_aead_driver_name(struct crypto_aead *tfm);

#endif
