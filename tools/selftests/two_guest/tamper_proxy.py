#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A man in the middle of one migration stream that flips one bit.

Listens on LISTEN_IP:LISTEN_PORT, accepts one connection (the source), and
relays it to TARGET_IP:TARGET_PORT in both directions. In the source's
direction it follows the record framing (16-byte headers, see
proto/src/wire.rs) and flips one bit in the first data page of the first
page batch of ROUND ("final" for the pages copied at the checkpoint, which
are never sent again, so the damage cannot be repaired by a later round).
Headers and lengths are left intact: only verification can notice.

Prints one line on stdout: the frame whose page was damaged, or "untouched".

Usage: tamper_proxy.py LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT [ROUND]
"""
import socket
import struct
import sys
import threading

HEADER_LEN = 16
KIND_PAGE_BATCH = 3
FINAL_ROUND = 0xFFFFFFFF
PAGE_SIZE = 4096
ENTRY_DATA = 0


def recv_exact(sock, n):
    """Reads exactly n bytes, or returns None if the peer closed first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def tamper_batch(payload, want_round):
    """Flips a bit in the first data page of a batch of want_round.

    Returns (payload, pfn) with pfn None when nothing was changed."""
    rnd, count = struct.unpack_from("<II", payload, 0)
    if rnd != want_round:
        return payload, None
    off = 8
    for _ in range(count):
        (word,) = struct.unpack_from("<Q", payload, off)
        off += 8
        if word >> 60 == ENTRY_DATA:
            damaged = bytearray(payload)
            damaged[off + PAGE_SIZE // 2] ^= 0x10
            return bytes(damaged), word & ((1 << 60) - 1)
        # A zero marker has no data bytes.
    return payload, None


def relay_source(src, dst, want_round, result):
    """Source to target: framed, with one bit flipped once."""
    try:
        while True:
            header = recv_exact(src, HEADER_LEN)
            if header is None:
                break
            kind, length = struct.unpack_from("<HI", header, 6)
            payload = recv_exact(src, length) if length else b""
            if payload is None:
                break
            if kind == KIND_PAGE_BATCH and result["pfn"] is None:
                payload, pfn = tamper_batch(payload, want_round)
                result["pfn"] = pfn
            dst.sendall(header + payload)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


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
    rnd = sys.argv[5] if len(sys.argv) > 5 else "final"
    want_round = FINAL_ROUND if rnd == "final" else int(rnd)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((lip, lport))
    listener.listen(1)
    listener.settimeout(120)
    src, _ = listener.accept()
    dst = socket.create_connection((tip, tport), timeout=10)
    dst.settimeout(None)
    src.settimeout(None)
    result = {"pfn": None}
    up = threading.Thread(target=relay_source, args=(src, dst, want_round, result))
    down = threading.Thread(target=relay_target, args=(dst, src))
    up.start()
    down.start()
    up.join()
    down.join()
    pfn = result["pfn"]
    print("untouched" if pfn is None else f"flipped a bit in frame {pfn:#x}", flush=True)


if __name__ == "__main__":
    main()
