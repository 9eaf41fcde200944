#!/usr/bin/env python3
"""Reads nh-sim-traffic's JSON report (docs/simulator.md, "Traffic report").

  traffic_report.py handover REPORT FROM TO
      One handover's traffic, for tools/demo: per direction what was sent,
      received, lost, duplicated and reordered, and the blackout of the
      FROM -> TO change. Exit 1 unless packets moved from FROM to TO in both
      directions (traffic flowed on TO after the handover).

  traffic_report.py blackouts REPORT HANDOVERS
      For bench/: one line per handover, "<inbound_us> <outbound_us>",
      pairing the k-th node change of each direction. Exit 1 unless each
      direction saw exactly HANDOVERS changes.

  traffic_report.py totals REPORT
      For bench/: "sent received lost duplicated reordered refused rx_missed"
      summed over both directions.
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


def blackouts(report, count):
    changes = {name: report[name]["handovers"] for name in DIRECTIONS}
    for name in DIRECTIONS:
        if len(changes[name]) != count:
            print("traffic_report: %s saw %d node changes, expected %d"
                  % (name, len(changes[name]), count), file=sys.stderr)
            return 1
    for inbound, outbound in zip(changes["inbound"], changes["outbound"]):
        print("%.1f %.1f" % (inbound["blackout_us"], outbound["blackout_us"]))
    return 0


def totals(report):
    keys = ("sent", "unique", "lost", "duplicated", "out_of_order", "refused")
    sums = [sum(report[name][k] for name in DIRECTIONS) for k in keys]
    sums.append(report["device"]["rx_missed"])
    print(" ".join(str(s) for s in sums))
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "handover":
        return handover(load(argv[2]), argv[3], argv[4])
    if len(argv) == 4 and argv[1] == "blackouts":
        return blackouts(load(argv[2]), int(argv[3]))
    if len(argv) == 3 and argv[1] == "totals":
        return totals(load(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
