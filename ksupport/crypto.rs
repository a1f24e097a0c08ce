// SPDX-License-Identifier: GPL-2.0

//! The kernel's crypto behind proto's crypto traits: AES-GCM ([`Gcm`], the
//! crypto API's `gcm(aes)`), SHA-256 ([`Sha256`], the library in
//! `lib/crypto/sha256.c`), random bytes, and the known-answer
//! [`self_test`] both modules run before they load.
//!
//! The AEAD API takes scatterlists, so [`Gcm`] describes the caller's buffer
//! page by page: the buffer may be in the direct map, in vmalloc space (the
//! record buffers), on the stack or in module data, and the page of each
//! address is what is valid in all of those. The nonce, the associated data
//! and the tag go through a kmalloc'd scratch area instead, so the API never
//! sees a stack address of ours. The scratch area, the scatterlist and the
//! request are allocated with the instance: sealing and opening allocate
//! nothing.

use crate::bindings;
use crate::clock::now_ns;
use crate::failure::Failure;
use crate::proto::crypto::{
    scrub, Aead, CryptoError, Hash256, SessionAead, HASH_LEN, KEY_LEN, NONCE_LEN, TAG_LEN,
};
use crate::proto::wire::{HEADER_LEN, MAX_PAYLOAD, PAGE_SIZE};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::c_str;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;

/// Longest buffer [`Gcm`] seals or opens: a whole record, header and tag
/// included.
const MAX_BUF: usize = HEADER_LEN + MAX_PAYLOAD + TAG_LEN;

/// Longest associated data [`Gcm`] takes (a record header is 16 bytes, a
/// token header 24).
const MAX_AAD: usize = 64;

/// Scatterlist entries of a [`Gcm`]: one per page the longest buffer can
/// touch (it need not start on a page boundary), and two each for the
/// associated data and the tag in case their scratch area straddles a page.
const SG_ENTRIES: usize = MAX_BUF.div_ceil(PAGE_SIZE) + 1 + 2 + 2;

/// The error the crypto API returns when a tag does not verify.
const EBADMSG: i32 = -(bindings::EBADMSG as i32);

/// The page holding the byte at kernel address `kvaddr`, or `None` if
/// nothing is mapped there.
///
/// Direct-map and kernel-image addresses translate by arithmetic; anything
/// else (vmalloc space, module data, vmapped stacks) is mapped page by page
/// and found by walking the kernel page tables.
fn page_of(kvaddr: usize) -> Option<NonNull<bindings::page>> {
    // SAFETY: `__virt_addr_valid` only inspects the address.
    let page = if unsafe { bindings::__virt_addr_valid(kvaddr as _) } {
        // SAFETY: `virt_to_page` is defined for the addresses
        // `virt_addr_valid` accepts, as this one is.
        unsafe { bindings::selfmig_virt_to_page(kvaddr as *const c_void) }
    } else {
        // SAFETY: `vmalloc_to_page` walks the kernel page tables and returns
        // NULL when nothing is mapped at the address.
        unsafe { bindings::vmalloc_to_page(kvaddr as *const c_void) }
    };
    NonNull::new(page)
}

/// Fills a scatterlist, one entry per page a buffer touches.
struct SgWriter<'a> {
    /// The table, initialised.
    sg: &'a mut [bindings::scatterlist],
    /// Entries filled so far.
    used: usize,
}

impl<'a> SgWriter<'a> {
    /// Starts an empty list in `sg`, clearing what a previous use left.
    fn new(sg: &'a mut [bindings::scatterlist]) -> Self {
        // SAFETY: `sg` is a writable array of `sg.len()` entries.
        unsafe { bindings::sg_init_table(sg.as_mut_ptr(), sg.len() as u32) };
        Self { sg, used: 0 }
    }

    /// Appends the `len` bytes at `kvaddr`, which must stay mapped (and
    /// unmoved) until the request using the list has completed.
    fn push(&mut self, kvaddr: *const u8, len: usize) -> Result<(), CryptoError> {
        let (mut addr, end) = (kvaddr as usize, kvaddr as usize + len);
        while addr < end {
            let offset = addr % PAGE_SIZE;
            let piece = (PAGE_SIZE - offset).min(end - addr);
            let page = page_of(addr).ok_or(CryptoError::Backend)?;
            let entry = self.sg.get_mut(self.used).ok_or(CryptoError::Backend)?;
            // SAFETY: `entry` is an initialised entry of the table and
            // `page` a valid page; `offset + piece` stays within it.
            unsafe {
                bindings::selfmig_sg_set_page(entry, page.as_ptr(), piece as u32, offset as u32)
            };
            self.used += 1;
            addr += piece;
        }
        Ok(())
    }

    /// Ends the list after the last entry pushed; returns its head.
    fn finish(self) -> Result<*mut bindings::scatterlist, CryptoError> {
        let last = self.used.checked_sub(1).ok_or(CryptoError::Backend)?;
        let entry = self.sg.get_mut(last).ok_or(CryptoError::Backend)?;
        // SAFETY: `entry` is an initialised entry of the table.
        unsafe { bindings::selfmig_sg_mark_end(entry) };
        Ok(self.sg.as_mut_ptr())
    }
}

/// An allocated `gcm(aes)` transform.
///
/// # Invariants
///
/// `0` was returned by `crypto_alloc_aead()` and is freed only on drop.
struct Tfm(NonNull<bindings::crypto_aead>);

impl Tfm {
    /// Allocates the best `gcm(aes)` instance the kernel has. On x86 that
    /// is an asynchronous wrapper around the AES-NI/CLMUL code, which runs
    /// the request inline whenever the FPU is usable (process context,
    /// as all our callers are); [`Gcm`] waits when it does not.
    fn alloc() -> Result<Self> {
        // SAFETY: The name is a NUL-terminated string; type and mask are
        // plain flags.
        let tfm = from_err_ptr(unsafe {
            bindings::crypto_alloc_aead(c_str!("gcm(aes)").as_char_ptr(), 0, 0)
        })?;
        // INVARIANT: Allocated above; `from_err_ptr` let no error through.
        Ok(Self(NonNull::new(tfm).ok_or(ENOMEM)?))
    }
}

impl Drop for Tfm {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the transform is live and ours.
        unsafe { bindings::selfmig_crypto_free_aead(self.0.as_ptr()) };
    }
}

/// A request bound to a [`Tfm`].
///
/// # Invariants
///
/// `0` was returned by `aead_request_alloc()` and is freed only on drop;
/// its owner drops it before the transform it is bound to.
struct Request(NonNull<bindings::aead_request>);

impl Request {
    /// Allocates a request for `tfm`.
    fn alloc(tfm: &Tfm) -> Result<Self> {
        // SAFETY: `tfm` is live.
        let req = unsafe {
            bindings::selfmig_aead_request_alloc(tfm.0.as_ptr(), bindings::SELFMIG_GFP_KERNEL)
        };
        // INVARIANT: Allocated above, if not NULL.
        Ok(Self(NonNull::new(req).ok_or(ENOMEM)?))
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the request is live and ours; it is
        // zeroised on free.
        unsafe { bindings::selfmig_aead_request_free(self.0.as_ptr()) };
    }
}

/// What a request points at besides the caller's buffer.
#[repr(C)]
struct Scratch {
    /// The request's source and destination: associated data, the
    /// caller's buffer, the tag.
    sg: [bindings::scatterlist; SG_ENTRIES],
    /// The nonce.
    iv: [u8; NONCE_LEN],
    /// The associated data, at the start.
    aad: [u8; MAX_AAD],
    /// The tag: written by sealing, read by opening.
    tag: [u8; TAG_LEN],
    /// Where an asynchronous completion is awaited.
    wait: bindings::crypto_wait,
}

/// AES-GCM (16-byte tag, 12-byte nonce) from the kernel's crypto API.
///
/// Not `Sync`: every call uses the one preallocated request and scratch
/// area.
pub(crate) struct Gcm {
    /// Dropped first: it is bound to the transform.
    req: Request,
    /// Only held, to be freed after `req`.
    _tfm: Tfm,
    /// Used by one call at a time, through `&self`.
    scratch: KBox<UnsafeCell<Scratch>>,
}

// SAFETY: The transform and request may be used and freed from any thread;
// only concurrent use is excluded, by `Gcm` not being `Sync`.
unsafe impl Send for Gcm {}

impl Gcm {
    /// An instance keyed with `key` (16, 24 or 32 bytes).
    pub(crate) fn new(key: &[u8]) -> Result<Self> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(EINVAL);
        }
        let scratch = KBox::<UnsafeCell<Scratch>>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
        // SAFETY: All-zero bytes are a valid `Scratch`: byte arrays and
        // scatterlist entries, which hold only integers.
        let scratch = unsafe { scratch.assume_init() };
        // SAFETY: The scratch area is boxed and stays put for the life of
        // the request that will point at `wait`.
        unsafe { bindings::selfmig_crypto_init_wait(&mut (*scratch.get()).wait) };
        let tfm = Tfm::alloc()?;
        // SAFETY: `tfm` is live; the key is readable for its length and is
        // copied into the transform.
        to_result(unsafe {
            bindings::crypto_aead_setkey(tfm.0.as_ptr(), key.as_ptr(), key.len() as u32)
        })?;
        // SAFETY: `tfm` is live.
        to_result(unsafe { bindings::crypto_aead_setauthsize(tfm.0.as_ptr(), TAG_LEN as u32) })?;
        let req = Request::alloc(&tfm)?;
        Ok(Self {
            req,
            _tfm: tfm,
            scratch,
        })
    }

    /// Prepares the request over `aad` ‖ `buf` ‖ tag for `cryptlen` bytes
    /// of input after the associated data; the tag is the scratch area's,
    /// which `open` fills beforehand and `seal` reads afterwards.
    fn prepare(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        cryptlen: usize,
    ) -> Result<(), CryptoError> {
        if aad.len() > MAX_AAD || buf.len() > MAX_BUF {
            return Err(CryptoError::Backend);
        }
        // SAFETY: `Gcm` is not `Sync` and every request has completed before
        // `seal`/`open` return (`Gcm::run` waits), so no other reference to
        // the scratch area exists while this one does.
        let scratch = unsafe { &mut *self.scratch.get() };
        scratch.iv = *nonce;
        scratch.aad[..aad.len()].copy_from_slice(aad);
        let (iv, aad_kvaddr, tag_kvaddr, wait) = (
            scratch.iv.as_mut_ptr(),
            scratch.aad.as_ptr(),
            scratch.tag.as_ptr(),
            core::ptr::addr_of_mut!(scratch.wait),
        );
        let mut sg = SgWriter::new(&mut scratch.sg);
        sg.push(aad_kvaddr, aad.len())?;
        sg.push(buf.as_ptr(), buf.len())?;
        sg.push(tag_kvaddr, TAG_LEN)?;
        let sg = sg.finish()?;
        let req = self.req.0.as_ptr();
        // SAFETY: `req` is live; the list, the IV and the wait are in the
        // scratch area, and `buf` is borrowed by our caller until
        // [`Gcm::run`] has waited for the request to complete. The flags
        // let the request sleep: callers run in process context.
        unsafe {
            bindings::selfmig_aead_request_set_callback(
                req,
                bindings::CRYPTO_TFM_REQ_MAY_BACKLOG | bindings::CRYPTO_TFM_REQ_MAY_SLEEP,
                Some(bindings::crypto_req_done),
                wait.cast(),
            );
            bindings::selfmig_aead_request_set_crypt(req, sg, sg, cryptlen as u32, iv);
            bindings::selfmig_aead_request_set_ad(req, aad.len() as u32);
        }
        Ok(())
    }
}

impl Gcm {
    /// Runs the prepared request (`encrypt` or `decrypt`) to completion;
    /// returns its status (0, `-EBADMSG`, ...).
    fn run(&self, encrypt: bool) -> i32 {
        let req = self.req.0.as_ptr();
        // SAFETY: The request was prepared over live buffers; waiting on the
        // scratch area's `wait` (the request's callback data) means it has
        // completed when this returns, so nothing refers to the buffers
        // afterwards.
        unsafe {
            let ret = if encrypt {
                bindings::crypto_aead_encrypt(req)
            } else {
                bindings::crypto_aead_decrypt(req)
            };
            bindings::selfmig_crypto_wait_req(ret, &mut (*self.scratch.get()).wait)
        }
    }

    /// The name of the implementation the kernel chose.
    pub(crate) fn driver(&self) -> &CStr {
        // SAFETY: The transform is live; the name is a NUL-terminated string
        // in its algorithm, which outlives it.
        unsafe {
            CStr::from_char_ptr(bindings::selfmig_crypto_aead_driver_name(
                self._tfm.0.as_ptr(),
            ))
        }
    }
}

impl Aead for Gcm {
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let len = buf.len();
        self.prepare(nonce, aad, buf, len)?;
        if self.run(true) != 0 {
            return Err(CryptoError::Backend);
        }
        // SAFETY: The request has completed; no other reference to the
        // scratch area exists (see `prepare`).
        *tag = unsafe { (*self.scratch.get()).tag };
        Ok(())
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        // SAFETY: No request is in flight and no other reference to the
        // scratch area exists (see `prepare`).
        unsafe { (*self.scratch.get()).tag = *tag };
        let len = buf.len() + TAG_LEN;
        self.prepare(nonce, aad, buf, len)?;
        match self.run(false) {
            0 => Ok(()),
            EBADMSG => Err(CryptoError::Auth),
            _ => Err(CryptoError::Backend),
        }
    }
}

impl SessionAead for Gcm {
    fn with_key(key: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        Self::new(key).map_err(|_| CryptoError::Backend)
    }
}

/// SHA-256 from the kernel's library implementation.
#[derive(Clone, Copy, Default)]
pub(crate) struct Sha256;

impl Hash256 for Sha256 {
    fn hash(&self, data: &[u8]) -> [u8; HASH_LEN] {
        let mut state = bindings::sha256_state::default();
        let mut digest = [0u8; HASH_LEN];
        // SAFETY: `state` is writable; it is initialised here, updated with
        // readable pieces (the length argument is 32 bits wide) and zeroed
        // by `sha256_final`, which writes `HASH_LEN` bytes to `digest`.
        unsafe {
            bindings::selfmig_sha256_init(&mut state);
            for piece in data.chunks(u32::MAX as usize) {
                bindings::sha256_update(&mut state, piece.as_ptr(), piece.len() as u32);
            }
            bindings::sha256_final(&mut state, digest.as_mut_ptr());
        }
        digest
    }
}

/// Fills `buf` from the kernel's random number generator.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // SAFETY: `buf` is writable for its length.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}

/// AES-256-GCM test case 16 of McGrew and Viega, "The Galois/Counter Mode
/// of Operation (GCM)": key, IV, associated data, plaintext, ciphertext,
/// tag.
mod vector {
    /// Length of the plaintext and the ciphertext.
    pub(super) const LEN: usize = 60;
    /// Key.
    pub(super) const KEY: [u8; 32] =
        *b"\xfe\xff\xe9\x92\x86\x65\x73\x1c\x6d\x6a\x8f\x94\x67\x30\x83\x08\
           \xfe\xff\xe9\x92\x86\x65\x73\x1c\x6d\x6a\x8f\x94\x67\x30\x83\x08";
    /// IV (nonce).
    pub(super) const IV: [u8; 12] = *b"\xca\xfe\xba\xbe\xfa\xce\xdb\xad\xde\xca\xf8\x88";
    /// Associated data.
    pub(super) const AAD: [u8; 20] =
        *b"\xfe\xed\xfa\xce\xde\xad\xbe\xef\xfe\xed\xfa\xce\xde\xad\xbe\xef\
           \xab\xad\xda\xd2";
    /// Plaintext.
    pub(super) const PLAIN: [u8; LEN] =
        *b"\xd9\x31\x32\x25\xf8\x84\x06\xe5\xa5\x59\x09\xc5\xaf\xf5\x26\x9a\
           \x86\xa7\xa9\x53\x15\x34\xf7\xda\x2e\x4c\x30\x3d\x8a\x31\x8a\x72\
           \x1c\x3c\x0c\x95\x95\x68\x09\x53\x2f\xcf\x0e\x24\x49\xa6\xb5\x25\
           \xb1\x6a\xed\xf5\xaa\x0d\xe6\x57\xba\x63\x7b\x39";
    /// Ciphertext.
    pub(super) const CIPHER: [u8; LEN] =
        *b"\x52\x2d\xc1\xf0\x99\x56\x7d\x07\xf4\x7f\x37\xa3\x2a\x84\x42\x7d\
           \x64\x3a\x8c\xdc\xbf\xe5\xc0\xc9\x75\x98\xa2\xbd\x25\x55\xd1\xaa\
           \x8c\xb0\x8e\x48\x59\x0d\xbb\x3d\xa7\xb0\x8b\x10\x56\x82\x88\x38\
           \xc5\xf6\x1e\x63\x93\xba\x7a\x0a\xbc\xc9\xf6\x62";
    /// Tag.
    pub(super) const TAG: [u8; 16] =
        *b"\x76\xfc\x6e\xce\x0f\x4e\x17\x68\xcd\xdf\x88\x53\xbb\x2d\x55\x1b";
}

/// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
const SHA256_ABC: [u8; HASH_LEN] =
    *b"\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde\x5d\xae\x22\x23\
       \xb0\x03\x61\xa3\x96\x17\x7a\x9c\xb4\x10\xff\x61\xf2\x00\x15\xad";

/// The error a failed self-test check loads with, as the crypto manager's
/// own self-tests use.
fn self_test_failed(check: &'static str) -> Failure {
    Failure::new(crate::errno::errno(bindings::ELIBBAD as i32), check)
}

/// The names of the checks [`gcm_vector`] makes, for one kind of buffer.
struct VectorChecks {
    /// Sealing gives the known ciphertext and tag.
    seal: &'static str,
    /// Opening gives the plaintext back.
    open: &'static str,
    /// Opening refuses a flipped ciphertext bit.
    tamper: &'static str,
}

/// Runs the AES-256-GCM vector in `buf`: sealing gives the known
/// ciphertext and tag, opening gives the plaintext back, and opening with
/// one bit of the ciphertext flipped fails authentication.
fn gcm_vector(
    gcm: &Gcm,
    buf: &mut [u8; vector::LEN],
    checks: &VectorChecks,
) -> Result<(), Failure> {
    let mut tag = [0u8; TAG_LEN];
    *buf = vector::PLAIN;
    let sealed = gcm.seal(&vector::IV, &vector::AAD, buf, &mut tag);
    if sealed.is_err() || *buf != vector::CIPHER || tag != vector::TAG {
        return Err(self_test_failed(checks.seal));
    }
    let opened = gcm.open(&vector::IV, &vector::AAD, buf, &tag);
    if opened.is_err() || *buf != vector::PLAIN {
        return Err(self_test_failed(checks.open));
    }
    *buf = vector::CIPHER;
    buf[17] ^= 0x10;
    if gcm.open(&vector::IV, &vector::AAD, buf, &tag) != Err(CryptoError::Auth) {
        return Err(self_test_failed(checks.tamper));
    }
    Ok(())
}

/// Seals and opens a record of the largest size, placed to touch as many
/// pages of a vmalloc buffer as one can, under a random key and nonce:
/// the scatterlist then has as many entries as it will ever need.
fn gcm_largest_record() -> Result<(), Failure> {
    let now = now_ns;
    const CHECK: &str = "AES-256-GCM round trip of a largest record in vmalloc space";
    let mut key = [0u8; KEY_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut key);
    random_bytes(&mut nonce);
    let gcm = Gcm::new(&key);
    scrub(&mut key);
    let gcm = gcm.map_err(|e| Failure::new(e, CHECK))?;
    let mut area = VVec::from_elem(0u8, PAGE_SIZE - 1 + MAX_BUF, GFP_KERNEL)
        .map_err(|_| Failure::new(ENOMEM, CHECK))?;
    let record = &mut area[PAGE_SIZE - 1..];
    random_bytes(record);
    let (aad, buf) = record.split_at_mut(HEADER_LEN);
    let plain = Sha256.hash(buf);
    let mut tag = [0u8; TAG_LEN];
    let start = now();
    let sealed = gcm.seal(&nonce, aad, buf, &mut tag);
    let sealed_ns = (now() - start).max(1) as u64;
    if sealed.is_err()
        || Sha256.hash(buf) == plain
        || gcm.open(&nonce, aad, buf, &tag).is_err()
        || Sha256.hash(buf) != plain
    {
        return Err(self_test_failed(CHECK));
    }
    pr_info!(
        "crypto self-test passed; gcm(aes) is {}, sealing at {} MB/s\n",
        gcm.driver(),
        buf.len() as u64 * 1000 / sealed_ns
    );
    Ok(())
}

/// Checks the kernel's SHA-256 and AES-GCM against known answers, and that
/// a tampered ciphertext is refused, before a module relies on them. The
/// error names the check that failed.
pub(crate) fn self_test() -> Result<(), Failure> {
    if Sha256.hash(b"abc") != SHA256_ABC {
        return Err(self_test_failed("SHA-256 known answer"));
    }
    let gcm = Gcm::new(&vector::KEY)
        .map_err(|e| Failure::new(e, "cannot set up a synchronous gcm(aes) with the test key"))?;
    let mut on_stack = vector::PLAIN;
    gcm_vector(
        &gcm,
        &mut on_stack,
        &VectorChecks {
            seal: "AES-256-GCM known answer: seal (stack buffer)",
            open: "AES-256-GCM known answer: open (stack buffer)",
            tamper: "AES-256-GCM accepted a flipped ciphertext bit (stack buffer)",
        },
    )?;
    const NO_BUFFER: &str = "cannot allocate the self-test buffer";
    // The same vector again, straddling two pages of vmalloc space.
    let mut area = VVec::from_elem(0u8, 2 * PAGE_SIZE, GFP_KERNEL)
        .map_err(|_| Failure::new(ENOMEM, NO_BUFFER))?;
    let start = PAGE_SIZE - vector::LEN / 2;
    let straddling = area
        .get_mut(start..start + vector::LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(Failure::new(EINVAL, NO_BUFFER))?;
    gcm_vector(
        &gcm,
        straddling,
        &VectorChecks {
            seal: "AES-256-GCM known answer: seal (across vmalloc pages)",
            open: "AES-256-GCM known answer: open (across vmalloc pages)",
            tamper: "AES-256-GCM accepted a flipped ciphertext bit (across vmalloc pages)",
        },
    )?;
    gcm_largest_record()
}
