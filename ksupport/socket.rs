// SPDX-License-Identifier: GPL-2.0

//! In-kernel TCP over IPv4: an owned socket and a connected stream.
//! Connecting is in `connect.rs`, listening in `listener.rs`, so each module
//! includes only the side it uses.
//!
//! Blocking calls honour the socket's send and receive timeouts, so a dead
//! peer turns into `ETIMEDOUT` rather than a thread stuck forever. Another
//! thread can unblock a call by shutting the socket down through a
//! [`Shutdown`] handle (used by abort and by module unload).

use crate::bindings;
use crate::clock::now_ns;
use crate::errno::errno;
use crate::proto::uapi::{self, Endpoint};
use core::ptr::NonNull;
use kernel::prelude::*;

/// Converts a kernel return value (negative errno) into a `Result`.
pub(crate) fn check(ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret)
    }
}

/// Calls `done` until it holds or `timeout_ms` have passed, sleeping
/// `min_us` to `max_us` microseconds between calls; returns whether it
/// held. Process context, no locks held.
pub(crate) fn poll_until(
    timeout_ms: u32,
    (min_us, max_us): (usize, usize),
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = now_ns() + i64::from(timeout_ms) * 1_000_000;
    loop {
        if done() {
            return true;
        }
        if now_ns() >= deadline {
            return false;
        }
        // SAFETY: Sleeping is allowed: process context, no locks held (the
        // caller's contract).
        unsafe { bindings::usleep_range_state(min_us, max_us, bindings::TASK_UNINTERRUPTIBLE) };
    }
}

/// An IPv4 socket address for `ep`.
pub(crate) fn sockaddr(ep: &Endpoint) -> bindings::sockaddr_in {
    bindings::sockaddr_in {
        sin_family: bindings::AF_INET as u16,
        sin_port: ep.port.to_be(),
        sin_addr: bindings::in_addr {
            s_addr: u32::from_ne_bytes(ep.addr),
        },
        ..Default::default()
    }
}

/// An owned kernel socket.
///
/// # Invariants
///
/// `sock` was created by `sock_create_kern`, has a `struct sock`, and is
/// released exactly once, on drop.
pub(crate) struct Socket {
    sock: NonNull<bindings::socket>,
}

// SAFETY: A socket may be used and released from any thread; `Socket` has
// no interior state of its own.
unsafe impl Send for Socket {}

impl Socket {
    /// Creates a TCP socket in the initial network namespace.
    pub(crate) fn tcp() -> Result<Self> {
        let mut sock: *mut bindings::socket = core::ptr::null_mut();
        // SAFETY: `init_net` is the initial namespace, alive forever; `sock`
        // is a valid out-pointer.
        check(unsafe {
            bindings::sock_create_kern(
                core::ptr::addr_of_mut!(bindings::init_net),
                bindings::AF_INET as i32,
                bindings::sock_type_SOCK_STREAM as i32,
                bindings::IPPROTO_TCP as i32,
                &mut sock,
            )
        })?;
        // INVARIANT: created just above.
        Ok(Self {
            sock: NonNull::new(sock).ok_or(ENOMEM)?,
        })
    }

    /// The raw socket.
    pub(crate) fn as_ptr(&self) -> *mut bindings::socket {
        self.sock.as_ptr()
    }

    /// Takes ownership of a socket returned by the kernel.
    ///
    /// # Safety
    ///
    /// `sock` must be a live socket with a `struct sock` that nothing else
    /// will release.
    #[allow(
        dead_code,
        reason = "used by listener.rs, which not every module includes"
    )]
    pub(crate) unsafe fn from_raw(sock: NonNull<bindings::socket>) -> Self {
        // INVARIANT: By the function's safety requirements.
        Self { sock }
    }

    /// Sets the send and receive timeouts (also bounds `connect`).
    pub(crate) fn set_timeouts(&self, ms: u32) {
        // SAFETY: By the type invariant `sock` and its `sk` are live; the
        // fields are plain longs that the stack reads on each blocking call.
        unsafe {
            let jiffies = bindings::__msecs_to_jiffies(ms) as isize;
            let sk = (*self.sock.as_ptr()).sk;
            (*sk).sk_rcvtimeo = jiffies;
            (*sk).sk_sndtimeo = jiffies;
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this is the only release.
        unsafe { bindings::sock_release(self.sock.as_ptr()) };
    }
}

/// Shuts a socket down from another thread, making blocked calls on it
/// return.
#[derive(Clone, Copy)]
pub(crate) struct Shutdown {
    sock: NonNull<bindings::socket>,
}

// SAFETY: `kernel_sock_shutdown` may be called from any thread.
unsafe impl Send for Shutdown {}

impl Shutdown {
    /// A handle for `sock`.
    pub(crate) fn of(sock: &Socket) -> Self {
        Self { sock: sock.sock }
    }

    /// Shuts the socket down in both directions.
    ///
    /// # Safety
    ///
    /// The [`TcpStream`] or [`TcpListener`] this handle came from must not
    /// have been dropped yet.
    pub(crate) unsafe fn shutdown(&self) {
        // SAFETY: The socket is live by the caller's guarantee.
        unsafe {
            bindings::kernel_sock_shutdown(
                self.sock.as_ptr(),
                bindings::sock_shutdown_cmd_SHUT_RDWR,
            )
        };
    }
}

/// A connected TCP stream.
pub(crate) struct TcpStream {
    /// The owned socket (visible to `connect.rs`).
    pub(crate) sock: Socket,
}

impl From<Socket> for TcpStream {
    fn from(sock: Socket) -> Self {
        Self { sock }
    }
}

impl TcpStream {
    /// Sets the send and receive timeouts.
    pub(crate) fn set_timeouts(&self, ms: u32) {
        self.sock.set_timeouts(ms);
    }

    /// Sends every write at once (`TCP_NODELAY`). Under Nagle's rule the
    /// last, partial segment of a record waits until what was sent before
    /// it is acknowledged, and the peer may delay that acknowledgement by
    /// 40 ms: after the final transfer's last batch, the CPU context and
    /// the `Complete` that follow, inside the downtime. The stream writes
    /// whole records, so no small writes are coalesced away.
    pub(crate) fn set_nodelay(&self) {
        // SAFETY: The socket is live and has a `struct sock`.
        unsafe { bindings::tcp_sock_set_nodelay((*self.sock.as_ptr()).sk) };
    }

    /// A handle to shut this stream down from another thread.
    pub(crate) fn shutdown_handle(&self) -> Shutdown {
        Shutdown::of(&self.sock)
    }

    /// Sends all of `buf`.
    pub(crate) fn send_all(&self, mut buf: &[u8]) -> Result {
        while !buf.is_empty() {
            let mut vec = bindings::kvec {
                iov_base: buf.as_ptr().cast_mut().cast(),
                iov_len: buf.len(),
            };
            let mut msg = bindings::msghdr {
                msg_flags: bindings::MSG_NOSIGNAL,
                ..Default::default()
            };
            // SAFETY: The socket is live; `vec` describes `buf`, which the
            // call only reads, for its stated length.
            let n = check(unsafe {
                bindings::kernel_sendmsg(self.sock.sock.as_ptr(), &mut msg, &mut vec, 1, buf.len())
            })
            .map_err(|e| {
                if e == EAGAIN {
                    errno(uapi::ETIMEDOUT)
                } else {
                    e
                }
            })?;
            if n == 0 {
                return Err(errno(uapi::ECONNRESET));
            }
            buf = &buf[n as usize..];
        }
        Ok(())
    }

    /// Receives exactly `buf.len()` bytes. A peer that closes first gives
    /// `ECONNRESET`; a peer that stays silent past the timeout `ETIMEDOUT`.
    pub(crate) fn recv_exact(&self, buf: &mut [u8]) -> Result {
        let mut off = 0;
        while off < buf.len() {
            let rest = &mut buf[off..];
            let mut vec = bindings::kvec {
                iov_base: rest.as_mut_ptr().cast(),
                iov_len: rest.len(),
            };
            let mut msg = bindings::msghdr::default();
            // SAFETY: The socket is live; `vec` describes `rest`, which the
            // call may write for its stated length.
            let n = check(unsafe {
                bindings::kernel_recvmsg(
                    self.sock.sock.as_ptr(),
                    &mut msg,
                    &mut vec,
                    1,
                    rest.len(),
                    bindings::MSG_WAITALL as i32,
                )
            })
            .map_err(|e| {
                if e == EAGAIN {
                    errno(uapi::ETIMEDOUT)
                } else {
                    e
                }
            })?;
            if n == 0 {
                return Err(errno(uapi::ECONNRESET));
            }
            off += n as usize;
        }
        Ok(())
    }

    /// Whether the peer has sent something not read yet (without waiting
    /// and without consuming it).
    #[allow(dead_code)]
    pub(crate) fn has_data(&self) -> bool {
        let mut byte = 0u8;
        let mut vec = bindings::kvec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        let mut msg = bindings::msghdr::default();
        // SAFETY: The socket is live; `vec` describes one writable byte.
        let n = unsafe {
            bindings::kernel_recvmsg(
                self.sock.sock.as_ptr(),
                &mut msg,
                &mut vec,
                1,
                1,
                (bindings::MSG_PEEK | bindings::MSG_DONTWAIT) as i32,
            )
        };
        n > 0
    }
}
