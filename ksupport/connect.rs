// SPDX-License-Identifier: GPL-2.0

//! Connecting an in-kernel TCP stream, and what only the connecting side
//! (the source) needs.

use crate::bindings;
use crate::proto::uapi::Endpoint;
use crate::socket::{check, poll_until, sockaddr, Socket, TcpStream};
use kernel::prelude::*;

impl TcpStream {
    /// Connects to `ep`, waiting at most `timeout_ms`; the same timeout
    /// then applies to every send and receive.
    pub(crate) fn connect(ep: &Endpoint, timeout_ms: u32) -> Result<Self> {
        let sock = Socket::tcp()?;
        sock.set_timeouts(timeout_ms);
        let mut sa = sockaddr(ep);
        // SAFETY: `sock` is live; `sa` is a valid `sockaddr_in` of the length
        // passed, which the call copies.
        check(unsafe {
            bindings::kernel_connect(
                sock.as_ptr(),
                (&mut sa as *mut bindings::sockaddr_in).cast(),
                core::mem::size_of::<bindings::sockaddr_in>() as i32,
                0,
            )
        })?;
        let stream = Self::from(sock);
        stream.set_nodelay();
        Ok(stream)
    }

    /// The underlying `struct sock`, e.g. to match its packets.
    pub(crate) fn sk(&self) -> *mut bindings::sock {
        // SAFETY: The socket is live and has a `struct sock`.
        unsafe { (*self.sock.as_ptr()).sk }
    }

    /// Waits until the peer's TCP has acknowledged everything sent, at most
    /// `timeout_ms`. The commit must have reached the target before the
    /// source powers off.
    pub(crate) fn wait_acked(&self, timeout_ms: u32) -> Result {
        let tp = self.sk().cast::<bindings::tcp_sock>();
        let acked = poll_until(timeout_ms, (200, 500), || {
            // SAFETY: A TCP socket's `struct sock` is the start of its
            // `struct tcp_sock`; the fields are read racily, as
            // `tcp_ioctl(SIOCOUTQ)` does.
            let (una, next) = unsafe {
                (
                    core::ptr::read_volatile(core::ptr::addr_of!((*tp).snd_una)),
                    core::ptr::read_volatile(core::ptr::addr_of!((*tp).write_seq)),
                )
            };
            una == next
        });
        match acked {
            true => Ok(()),
            false => Err(crate::errno::errno(crate::proto::uapi::ETIMEDOUT)),
        }
    }
}
