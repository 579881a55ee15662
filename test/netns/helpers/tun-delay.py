#!/usr/bin/env python3
"""Delay every packet through a TUN device (this kernel has no netem).

Usage: tun-delay.py DEVICE DELAY_MS. Attaches to the TUN device DEVICE of the
namespace it runs in (created by `ip tuntap add`), reads each packet routed
into it and writes it back after DELAY_MS, so the kernel routes it on as if it
had arrived on DEVICE. Order is kept. A line `delay N` on stdin changes the
delay for packets read from then on; end of stdin ends the program. Prints
`ready` once attached.
"""
import fcntl
import os
import select
import struct
import sys
import time
from collections import deque

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main() -> None:
    device, delay = sys.argv[1], float(sys.argv[2]) / 1000
    tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TUN | IFF_NO_PI))
    queue: deque = deque()  # (due, packet): due times only grow while the delay is constant
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([tun, stdin], [], [], timeout)
        if stdin in readable:
            line = os.read(stdin, 4096).decode()
            if not line:
                return
            for cmd in line.split("\n"):
                if cmd.startswith("delay "):
                    delay = float(cmd.split()[1]) / 1000
        if tun in readable:
            while True:
                try:
                    packet = os.read(tun, 65536)
                except BlockingIOError:
                    break
                queue.append((time.monotonic() + delay, packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            try:
                os.write(tun, queue[0][1])
            except BlockingIOError:
                select.select([], [tun], [], 0.01)  # the device is busy: wait for it, keep the packet and the order
                continue
            except OSError:
                pass  # a packet the kernel refuses is lost, as on a real link
            queue.popleft()


if __name__ == "__main__":
    main()
