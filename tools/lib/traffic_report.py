#!/usr/bin/env python3
"""Reads nh-sim-traffic's JSON report (docs/simulator.md, "Traffic report").

  traffic_report.py handover REPORT FROM TO
      One handover's traffic, for tools/demo: per direction what was sent,
      received, lost, duplicated and reordered, and the blackout of the
      FROM -> TO change. Exit 1 unless packets moved from FROM to TO in both
      directions (traffic flowed on TO after the handover).

  traffic_report.py nics REPORT MOVES
      Many NICs handed over at once, for tools/demo --nics: one line per NIC
      (MOVES: lines "BDF FROM TO STATUS", STATUS nicctl's exit code) with the
      handover's outcome, the NIC's blackout (the longest pause of any of its
      queues' flows), what its flows sent, lost, duplicated and reordered.
      Exit 1 unless every handover committed and every flow of every moved
      NIC continued on its target.
"""
import json
import sys

DIRECTIONS = ("inbound", "outbound")


def load(path):
    with open(path) as f:
        return json.load(f)


def handover(report, source, target):
    ok = True
    for name in DIRECTIONS:
        d = report[name]
        changes = [c for c in d["handovers"] if c["from"] == source and c["to"] == target]
        if changes:
            blackout = "blackout %.2f ms" % (changes[0]["blackout_us"] / 1000.0)
        else:
            blackout = "no packet carried by %s after the handover" % target
            ok = False
        print("  %-9s sent %d, received %d, lost %d, duplicated %d, reordered %d; %s"
              % (name, d["sent"], d["unique"], d["lost"], d["duplicated"],
                 d["out_of_order"], blackout))
    if report["device"]["rx_missed"] or report["rx_socket_drops"]:
        print("  drops     rx ring full %d, socket full %d"
              % (report["device"]["rx_missed"], report["rx_socket_drops"]))
    return 0 if ok else 1


def nics(report, moves_path):
    by_bdf = {nic["bdf"]: nic for nic in report.get("nics", [])}
    ok = True
    print("  %-13s %-15s %-9s %12s %10s %6s %11s %10s" % (
        "NIC", "MOVE", "HANDOVER", "BLACKOUT_MS", "SENT", "LOST", "DUPLICATED", "REORDERED"))
    with open(moves_path) as f:
        moves = [line.split() for line in f if line.strip()]
    for bdf, source, target, status in moves:
        nic = by_bdf.get(bdf)
        outcome = "committed" if status == "0" else "exit " + status
        if nic is None:
            print("  %-13s no traffic report" % bdf)
            ok = False
            continue
        queues = len(nic["queues"])
        moved = all(
            sum(1 for c in nic[d]["handovers"] if c["from"] == source and c["to"] == target)
            == queues for d in DIRECTIONS)
        if status != "0" or not moved:
            ok = False
        sent = sum(nic[d]["sent"] for d in DIRECTIONS)
        lost = sum(nic[d]["lost"] for d in DIRECTIONS)
        dup = sum(nic[d]["duplicated"] for d in DIRECTIONS)
        ooo = sum(nic[d]["out_of_order"] for d in DIRECTIONS)
        blackout = "%.2f" % (nic["max_blackout_us"] / 1000.0) if moved else "not moved"
        print("  %-13s %-15s %-9s %12s %10d %6d %11d %10d" % (
            bdf, "%s->%s" % (source, target), outcome, blackout, sent, lost, dup, ooo))
    total = {k: sum(report[d][k] for d in DIRECTIONS)
             for k in ("sent", "lost", "duplicated", "out_of_order")}
    print("  all NICs: sent %(sent)d, lost %(lost)d, duplicated %(duplicated)d, "
          "reordered %(out_of_order)d" % total)
    if report["device"]["rx_missed"] or report["rx_socket_drops"]:
        print("  drops     rx ring full %d, socket full %d"
              % (report["device"]["rx_missed"], report["rx_socket_drops"]))
    return 0 if ok else 1


def main(argv):
    if len(argv) == 5 and argv[1] == "handover":
        return handover(load(argv[2]), argv[3], argv[4])
    if len(argv) == 4 and argv[1] == "nics":
        return nics(load(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
