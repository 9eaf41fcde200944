"""The wire peer's side of tests/vm/frame_echo_test.sh.

frame_echo_peer.py IFACE ECHO_MAC NODE COUNT: sends COUNT wire frames
(sim/guest_abi.h: NH_SIM_ETHERTYPE from NH_SIM_WIRE_PEER_MAC, payload a
struct nh_sim_wire_packet, padded to 60 bytes) to ECHO_MAC on IFACE, plus a
runt of the same ethertype and a frame of another ethertype, and checks the
echoes: one per wire frame, MACs swapped, sequence numbers and send times
kept, direction OUTBOUND, node NODE, nothing else. Exit 0 when all hold.
"""
import socket
import struct
import sys
import time

ETHERTYPE = 0x88B5
PEER_MAC = bytes([0x02, 0x4E, 0x48, 0xFF, 0xFF, 0xFE])
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
WINDOW = 50  # frames in flight: socket buffers hold them all
WIRE = struct.Struct("<QqIIQ")  # seq, sent_ns, direction, node, reserved


def main():
    iface, echo_mac, node, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    echo_mac = bytes(int(b, 16) for b in echo_mac.split(":"))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    s.bind((iface, ETHERTYPE))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    other = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    other.bind((iface, 0))
    header = echo_mac + PEER_MAC + struct.pack("!H", ETHERTYPE)
    other.send(echo_mac + PEER_MAC + struct.pack("!H", 0x88B6) + bytes(46))  # not ours
    s.send(header + bytes(10))  # a runt: no room for the payload
    sent = {}
    s.settimeout(1.0)
    seen, errors = set(), []
    deadline = time.monotonic() + 30
    while len(seen) < count and time.monotonic() < deadline:
        while len(sent) < count and len(sent) - len(seen) < WINDOW:
            seq = len(sent) + 1
            sent[seq] = time.monotonic_ns()
            frame = header + WIRE.pack(seq, sent[seq], 0, 0xFF, 0)
            s.send(frame + bytes(max(0, 60 - len(frame))))
        try:
            frame, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        if addr[2] == PACKET_OUTGOING:
            continue
        if frame[0:6] != PEER_MAC or frame[6:12] != echo_mac:
            errors.append("MACs not swapped: %s" % frame[0:12].hex())
            continue
        seq, sent_ns, direction, echo_node, _ = WIRE.unpack_from(frame, 14)
        if seq not in sent or sent_ns != sent[seq] or direction != 1 or echo_node != node:
            errors.append("bad echo seq=%d sent_ns=%d dir=%d node=%d" %
                          (seq, sent_ns, direction, echo_node))
        elif seq in seen:
            errors.append("duplicate echo of %d" % seq)
        seen.add(seq)
    # Anything more (an echo of the runt or of the other frame) is an error.
    s.settimeout(0.5)
    try:
        while True:
            frame, addr = s.recvfrom(2048)
            if addr[2] != PACKET_OUTGOING:
                errors.append("unexpected frame %s" % frame[:20].hex())
    except socket.timeout:
        pass
    missing = count - len(seen)
    print("frame_echo_peer: %d echoes of %d, %d missing, %d errors" %
          (len(seen), count, missing, len(errors)))
    for e in errors[:10]:
        print("  " + e)
    return 0 if missing == 0 and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
