// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline (and macro) helpers of the kernel crypto API and of
 * scatterlists that ksupport/crypto.rs needs, as real functions: bindgen
 * cannot reach them. One wrapper per helper, no logic of our own.
 *
 * Not built on its own: each module's shim.c includes this file, so the
 * wrappers end up in that module.
 */
#include <crypto/aead.h>
#include <crypto/sha2.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>

#include "crypto_shim.h"

struct aead_request *selfmig_aead_request_alloc(struct crypto_aead *tfm, gfp_t gfp)
{
	return aead_request_alloc(tfm, gfp);
}

void selfmig_aead_request_free(struct aead_request *req)
{
	aead_request_free(req);
}

void selfmig_aead_request_set_callback(struct aead_request *req, u32 flags,
				       crypto_completion_t compl, void *data)
{
	aead_request_set_callback(req, flags, compl, data);
}

void selfmig_aead_request_set_crypt(struct aead_request *req, struct scatterlist *src,
				    struct scatterlist *dst, unsigned int cryptlen, u8 *iv)
{
	aead_request_set_crypt(req, src, dst, cryptlen, iv);
}

void selfmig_aead_request_set_ad(struct aead_request *req, unsigned int assoclen)
{
	aead_request_set_ad(req, assoclen);
}

void selfmig_crypto_free_aead(struct crypto_aead *tfm)
{
	crypto_free_aead(tfm);
}

void selfmig_sg_set_page(struct scatterlist *sg, struct page *page, unsigned int len,
			 unsigned int offset)
{
	sg_set_page(sg, page, len, offset);
}

void selfmig_sg_mark_end(struct scatterlist *sg)
{
	sg_mark_end(sg);
}

/* Only for addresses virt_addr_valid() accepts. */
struct page *selfmig_virt_to_page(const void *kvaddr)
{
	return virt_to_page(kvaddr);
}

void selfmig_sha256_init(struct sha256_state *sctx)
{
	sha256_init(sctx);
}

void selfmig_crypto_init_wait(struct crypto_wait *wait)
{
	crypto_init_wait(wait);
}

int selfmig_crypto_wait_req(int err, struct crypto_wait *wait)
{
	return crypto_wait_req(err, wait);
}

const char *selfmig_crypto_aead_driver_name(struct crypto_aead *tfm)
{
	return crypto_aead_driver_name(tfm);
}
