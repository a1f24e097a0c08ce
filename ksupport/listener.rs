// SPDX-License-Identifier: GPL-2.0

//! A listening in-kernel TCP socket.

use crate::bindings;
use crate::errno::errno;
use crate::proto::uapi::{self, Endpoint};
use crate::socket::{check, poll_until, sockaddr, Shutdown, Socket, TcpStream};
use core::ptr::NonNull;
use kernel::prelude::*;

/// A listening TCP socket.
pub(crate) struct TcpListener {
    sock: Socket,
}

impl TcpListener {
    /// Binds to `ep` (address reuse on) and listens with a backlog of one.
    pub(crate) fn bind(ep: &Endpoint) -> Result<Self> {
        let sock = Socket::tcp()?;
        // SAFETY: `sock` and its `sk` are live.
        unsafe { bindings::sock_set_reuseaddr((*sock.as_ptr()).sk) };
        let mut sa = sockaddr(ep);
        // SAFETY: As in `TcpStream::connect`.
        check(unsafe {
            bindings::kernel_bind(
                sock.as_ptr(),
                (&mut sa as *mut bindings::sockaddr_in).cast(),
                core::mem::size_of::<bindings::sockaddr_in>() as i32,
            )
        })?;
        // SAFETY: `sock` is live and bound.
        check(unsafe { bindings::kernel_listen(sock.as_ptr(), 1) })?;
        Ok(Self { sock })
    }

    /// A handle to shut the listener down (making `accept` return).
    pub(crate) fn shutdown_handle(&self) -> Shutdown {
        Shutdown::of(&self.sock)
    }

    /// Waits for one connection.
    pub(crate) fn accept(&self) -> Result<TcpStream> {
        let mut new: *mut bindings::socket = core::ptr::null_mut();
        // SAFETY: The listener is live; `new` is a valid out-pointer.
        check(unsafe { bindings::kernel_accept(self.sock.as_ptr(), &mut new, 0) })?;
        let new = NonNull::new(new).ok_or(errno(uapi::ECONNABORTED))?;
        // SAFETY: `kernel_accept` returned a new socket that we now own.
        let stream = TcpStream::from(unsafe { Socket::from_raw(new) });
        stream.set_nodelay();
        Ok(stream)
    }
}

impl TcpStream {
    /// Acknowledges every segment at once instead of delaying the ACK: the
    /// loader jumps away right after the commit, and the source waits for
    /// that commit to be acknowledged before it powers off.
    pub(crate) fn set_quickack(&self) {
        // SAFETY: The socket is live and has a `struct sock`.
        unsafe { bindings::tcp_sock_set_quickack((*self.sock.as_ptr()).sk, 1) };
    }

    /// Waits until the device has released every packet of this stream
    /// (the ACK of what was just read included), at most `timeout_ms`;
    /// returns whether it did. A device quiesced with packets still queued
    /// drops them: before the jump, that would be the commit's ACK.
    pub(crate) fn wait_sent(&self, timeout_ms: u32) -> bool {
        // SAFETY: The socket is live and has a `struct sock`.
        let sk = unsafe { (*self.sock.as_ptr()).sk };
        poll_until(timeout_ms, (50, 100), || {
            // SAFETY: `sk` is live; the shim reads one refcount.
            unsafe { bindings::selfmig_sk_wmem_alloc(sk) <= 1 }
        })
    }
}
