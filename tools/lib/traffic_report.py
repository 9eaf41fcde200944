#!/usr/bin/env python3
"""Reads nh-sim-traffic's JSON report (docs/simulator.md, "Traffic report").

  traffic_report.py handover REPORT FROM TO
      One handover's traffic, for tools/demo: per direction what was sent,
      received, lost, duplicated and reordered, and the blackout of the
      FROM -> TO change. Exit 1 unless packets moved from FROM to TO in both
      directions (traffic flowed on TO after the handover).
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


def main(argv):
    if len(argv) == 5 and argv[1] == "handover":
        return handover(load(argv[2]), argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
