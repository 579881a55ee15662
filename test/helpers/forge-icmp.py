"""
Forge one ICMP port unreachable (type 3, code 3) as an off-path attacker would: it quotes a UDP datagram
from SRC:SPORT to DST:DPORT, and is sent from a raw socket (root) to SRC over loopback, so the kernel hands
it to the UDP socket connected from SRC:SPORT to DST:DPORT, which reports ECONNREFUSED.
Used by test/loopback/quic-peer-lost.test.ts. Usage: forge-icmp.py SRC SPORT DST DPORT [COUNT [GAP_MS]]:
COUNT of them (default 1), GAP_MS apart (default 0; back to back the kernel reports them as one).
"""
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
count = int(sys.argv[5]) if len(sys.argv) > 5 else 1
gap = int(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 0
# the quoted packet: the client's datagram to the server
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + 8 + 4, 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
udp = struct.pack('!HHHH', sport, dport, 12, 0) + b'\0\0\0\0'
body = struct.pack('!BBHI', 3, 3, 0, 0) + ip + udp
body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for i in range(count):
    if i > 0 and gap > 0:
        time.sleep(gap)
    s.sendto(body, (src, 0))
s.close()
