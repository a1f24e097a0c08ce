#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A man in the middle of one migration stream.

Listens on LISTEN_IP:LISTEN_PORT, accepts one connection (the source) and
relays it to TARGET_IP:TARGET_PORT in both directions, damaging the
source's direction as MODE says:

  flip:N   follow the record framing (16-byte headers, see proto/src/wire.rs;
           after the token every record is sealed, kind | 0x8000) and flip
           one bit in the middle of the payload of the N-th page batch.
           Headers and lengths stay intact: only authentication can notice.
  context:N  the same in the N-th CPU-context record, which the source
           sends after the checkpoint, once the staged pages are out: the
           target refuses the image after the source stopped for it.
  cut:N    relay the first N bytes of the source's stream, then close both
           connections: a stream truncated mid-record.

Prints one line on stdout saying what it did.

Usage: tamper_proxy.py LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT MODE
"""
import socket
import struct
import sys
import threading

HEADER_LEN = 16
KIND_PAGE_BATCH = 3
KIND_CPU_CONTEXT = 4
KIND_SEALED = 0x8000


def recv_exact(sock, n):
    """Reads exactly n bytes, or returns None if the peer closed first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def close(*socks):
    """Shuts sockets down both ways, ignoring errors."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def flip(src, dst, nth, result, target_kind=KIND_PAGE_BATCH):
    """Source to target, framed; one bit flipped in the nth record of
    target_kind."""
    seen = 0
    try:
        while True:
            header = recv_exact(src, HEADER_LEN)
            if header is None:
                break
            kind, length = struct.unpack_from("<HI", header, 6)
            payload = recv_exact(src, length) if length else b""
            if payload is None:
                break
            if kind & ~KIND_SEALED == target_kind and length:
                seen += 1
                if seen == nth:
                    damaged = bytearray(payload)
                    damaged[length // 2] ^= 0x10
                    payload = bytes(damaged)
                    what = "page batch" if target_kind == KIND_PAGE_BATCH else "CPU context"
                    result.append(f"flipped a bit in {what} {nth} ({length} bytes, "
                                  f"{'sealed' if kind & KIND_SEALED else 'plaintext'})")
            dst.sendall(header + payload)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def flip_context(src, dst, nth, result):
    """Source to target, framed; one bit flipped in the nth CPU context."""
    flip(src, dst, nth, result, KIND_CPU_CONTEXT)


def cut(src, dst, limit, result):
    """Source to target, verbatim, until limit bytes; then both closed."""
    sent = 0
    try:
        while sent < limit:
            data = src.recv(min(65536, limit - sent))
            if not data:
                break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    result.append(f"cut the stream after {sent} bytes")
    close(src, dst)


def relay_target(dst, src):
    """Target to source: verbatim."""
    try:
        while True:
            data = dst.recv(65536)
            if not data:
                break
            src.sendall(data)
    except OSError:
        pass
    finally:
        try:
            src.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    lip, lport, tip, tport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    mode, _, arg = sys.argv[5].partition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((lip, lport))
    listener.listen(1)
    listener.settimeout(120)
    src, _ = listener.accept()
    dst = socket.create_connection((tip, tport), timeout=10)
    dst.settimeout(None)
    src.settimeout(None)
    result = []
    work = {"flip": flip, "context": flip_context, "cut": cut}[mode]
    up = threading.Thread(target=work, args=(src, dst, int(arg), result))
    down = threading.Thread(target=relay_target, args=(dst, src))
    up.start()
    down.start()
    up.join()
    down.join()
    print(result[0] if result else "untouched", flush=True)


if __name__ == "__main__":
    main()
