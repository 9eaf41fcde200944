#!/usr/bin/env python3
"""Turns bench/handover_bench.sh's raw results into the numbers it prints.

  summarize.py paths RUN_DIR TRAFFIC_JSON LOAD_TSV
      RUN_DIR: per handover k (1, 2, ...) k.path (the commit path asked for),
      k.handover.json (`nicctl --json handover`) and k.machine.json
      (`nh-sim-machine show --json` just before the next handover).
      LOAD_TSV: "unix_time load1 busy_cpus" samples taken during the run.
      Prints per commit path (the one the handover took) and per direction
      blackout percentiles as the traffic saw them, the phases inside the
      blackout from the machine's timeline, loss/dup/reorder over the run,
      the ratio daemon/kernel of p50 and p99, and the machine's load.
      Exit 1 if a handover did not commit, took another path than asked, or
      the traffic did not see every handover in both directions.

  summarize.py throughput RUNS_TSV
      RUNS_TSV: "hook offered_pps seconds delivered cpu_ticks lost" per run.
      Prints per hook setting the median delivered rate and the kernel's CPU
      time per packet, and the hook's cost as the difference of the medians.
"""
import glob
import json
import os
import statistics
import sys

DIRECTIONS = ("inbound", "outbound")
PHASES = ("OFFERING", "QUIESCING", "REROUTING", "HANDING_OFF", "ATTACHING")


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def line(label, values_us):
    return "  %-44s p50 %8.3f  p90 %8.3f  p99 %8.3f  max %8.3f ms  (n=%d)" % (
        label, percentile(values_us, 50) / 1e3, percentile(values_us, 90) / 1e3,
        percentile(values_us, 99) / 1e3, max(values_us) / 1e3, len(values_us))


def seconds(duration):
    return float(duration.rstrip("s")) if duration else 0.0


# nh-sim-machine show --json, per NIC "timeline": CLOCK_MONOTONIC ns, 0 = not
# reached; reset when the source's gates close. In blackout order.
TIMELINE = (
    ("gate_closed_ns", "gate closed"),
    ("drained_ns", "drained"),
    ("rerouted_ns", "rerouted"),
    ("handed_off_ns", "HANDOFF"),
    ("doorbell_ns", "doorbell"),
    ("target_woken_ns", "target woken"),
    ("target_committed_ns", "target CAS"),
    ("target_attached_ns", "target attached"),
    ("first_rx_poll_ns", "first RX poll"),
)
PATH_NAMES = {"COMMIT_PATH_KERNEL": "kernel", "COMMIT_PATH_DAEMON": "daemon"}


def nic_timeline(show, bdf):
    """The timeline object of NIC `bdf` in a `show --json` document."""
    nics = show.get("nics", [])
    for nic in nics:
        if nic.get("bdf") == bdf and "timeline" in nic:
            return nic["timeline"]
    return nics[0].get("timeline") if len(nics) == 1 else None


def timeline_steps(t):
    """[(label, duration_us)] between consecutive reached stamps, then the
    kernel's view of the whole blackout (gate closed -> first RX poll)."""
    steps = []
    previous = None
    for key, label in TIMELINE:
        at = int(t.get(key, 0) or 0)
        if not at:
            continue
        if previous is not None:
            steps.append(("%s -> %s" % (previous[1], label), (at - previous[0]) / 1e3))
        previous = (at, label)
    first, last = int(t.get("gate_closed_ns", 0) or 0), int(t.get("first_rx_poll_ns", 0) or 0)
    if first and last:
        steps.append(("gate closed -> first RX poll", (last - first) / 1e3))
    return steps


def read_json(path):
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text else {}


def ratio(slow, fast):
    return "%.1fx" % (slow / fast) if fast > 0 else "-"


def paths(run_dir, traffic_path, load_path):
    traffic = read_json(traffic_path)
    runs = []
    for path_file in sorted(glob.glob(os.path.join(run_dir, "*.path")),
                            key=lambda p: int(os.path.basename(p).split(".")[0])):
        k = os.path.basename(path_file).split(".")[0]
        with open(path_file) as f:
            asked = f.read().strip()
        doc = read_json(os.path.join(run_dir, k + ".handover.json"))
        machine_file = os.path.join(run_dir, k + ".machine.json")
        show = read_json(machine_file) if os.path.exists(machine_file) else {}
        runs.append((int(k), asked, doc, show))
    ok = True
    taken = {}
    failed = [r for r in runs if r[2].get("phase") != "HANDOVER_PHASE_COMMITTED"]
    for k, asked, doc, _ in failed:
        print("bench: handover %d (%s path) did not commit: %s %s" % (
            k, asked, doc.get("phase", "no answer"), doc.get("error", {}).get("message", "")))
        ok = False
    # Match each committed handover to its node change in each direction of
    # the traffic, in order: the i-th change from A to B is the i-th
    # committed handover A -> B.
    changes = {}
    for name in DIRECTIONS:
        for c in traffic[name]["handovers"]:
            changes.setdefault((name, c["from"], c["to"]), []).append(c)
    used = {}
    rows = []  # (path, move, {direction: change}, timeline)
    for k, asked, doc, show in runs:
        if doc.get("phase") != "HANDOVER_PHASE_COMMITTED":
            continue
        path = PATH_NAMES.get(doc.get("commit_path"), doc.get("commit_path", "?"))
        if asked != "auto" and path != asked:
            print("bench: handover %d asked for the %s path and took %s" % (k, asked, path))
            ok = False
        move = (doc["source_node"], doc["target_node"])
        seen = {}
        for name in DIRECTIONS:
            key = (name,) + move
            i = used.get(key, 0)
            if i < len(changes.get(key, [])):
                seen[name] = changes[key][i]
                used[key] = i + 1
        if len(seen) != len(DIRECTIONS):
            print("bench: the traffic did not see handover %d (%s -> %s) in both directions"
                  % ((k,) + move))
            ok = False
        timeline = nic_timeline(show, doc.get("bdf", "")) if show else None
        if timeline is not None and int(timeline.get("epoch", 0) or 0) != int(doc.get("to_epoch", 0)):
            timeline = None  # not this handover's (the next one had begun)
        rows.append((path, move, seen, timeline, doc))
        taken[path] = taken.get(path, 0) + 1

    p50s, p99s = {}, {}
    for path in sorted(taken, key=lambda p: (p != "kernel", p)):
        mine = [r for r in rows if r[0] == path]
        print("%s path: %d handovers" % (path, len(mine)))
        print(" blackout, as the traffic saw it (last packet via the old node -> first via the new):")
        for move in sorted({r[1] for r in mine}):
            for name in DIRECTIONS:
                values = [r[2][name]["blackout_us"] for r in mine if r[1] == move and name in r[2]]
                if values:
                    print(line("%s->%s %s" % (move[0], move[1], name), values))
        longer = [max(r[2][n]["blackout_us"] for n in r[2]) for r in mine if r[2]]
        if longer:
            print(line("handover (longer)", longer))
            p50s[path], p99s[path] = percentile(longer, 50), percentile(longer, 99)
        timelines = [r[3] for r in mine if r[3]]
        print(" phases inside the blackout (the machine's timeline, %d of %d handovers):"
              % (len(timelines), len(mine)))
        steps = {}
        for t in timelines:
            for label, us in timeline_steps(t):
                steps.setdefault(label, []).append(us)
        order = [s for t in timelines for s, _ in timeline_steps(t)]
        for label in sorted(steps, key=order.index):
            print(line(label, steps[label]))
        # The traffic's side of the blackout around the kernels' part (same
        # clock): the sink's last packet via the old node before the gates
        # closed, and from the target's first RX poll (inbound) or the gate
        # closing (outbound) to the sink's first packet via the new node.
        def around(name, start_key, end_key, before):
            values = []
            for r in mine:
                t = r[3]
                if not t or name not in r[2] or not int(t.get(start_key if before else end_key, 0) or 0):
                    continue
                c = r[2][name]
                if before:
                    values.append((int(t[start_key]) - c["last_before_ns"]) / 1e3)
                else:
                    values.append((c["first_after_ns"] - int(t[end_key])) / 1e3)
            return values
        for name, label, values in (
                ("inbound", "sink's last via source -> gate closed (in)",
                 around("inbound", "gate_closed_ns", None, True)),
                ("outbound", "sink's last via source -> gate closed (out)",
                 around("outbound", "gate_closed_ns", None, True)),
                ("inbound", "first RX poll -> sink (in)",
                 around("inbound", None, "first_rx_poll_ns", False)),
                ("outbound", "target attached -> sink (out)",
                 around("outbound", None, "target_attached_ns", False))):
            if values:
                print(line(label, values))
        print(" phases, as the source daemon recorded them:")
        docs = [r[4] for r in mine]
        for phase in PHASES:
            values = [seconds(p["duration"]) * 1e6 for d in docs for p in d["phases"]
                      if p["phase"] == "HANDOVER_PHASE_" + phase]
            if values:
                print(line(phase.lower().replace("_", "-"), values))
    if "daemon" in p50s and "kernel" in p50s:
        print("daemon path / kernel path: p50 %s, p99 %s" % (
            ratio(p50s["daemon"], p50s["kernel"]), ratio(p99s["daemon"], p99s["kernel"])))

    print("packets over the whole run (both paths):")
    for name in DIRECTIONS:
        d = traffic[name]
        print("  %-9s sent %d, received %d, lost %d (wire queue full %d), duplicated %d, "
              "reordered %d, refused %d"
              % (name, d["sent"], d["unique"], d["lost"], d.get("wire_drops", 0), d["duplicated"],
                 d["out_of_order"], d["refused"]))
    print("  device    rx ring full %d, socket drops %d"
          % (traffic["device"]["rx_missed"], traffic["rx_socket_drops"]))
    load(load_path)
    return 0 if ok else 1


def load(load_path):
    """The load average and busy CPUs sampled during the run."""
    samples = []
    with open(load_path) as f:
        for row in f:
            fields = row.split()
            if len(fields) == 3:
                samples.append((float(fields[1]), float(fields[2])))
    if not samples:
        return
    load1 = [s[0] for s in samples]
    busy = [s[1] for s in samples]
    print("machine load during the run (%d samples, 1 s apart): load average (1 min) mean %.2f,"
          " max %.2f; busy CPUs mean %.2f of %d" % (
              len(samples), statistics.mean(load1), max(load1), statistics.mean(busy),
              os.cpu_count()))


def throughput(runs_path):
    runs = {}
    with open(runs_path) as f:
        for row in f:
            hook, offered, secs, delivered, ticks, lost = row.split()
            runs.setdefault(hook, []).append(
                (float(offered), float(secs), int(delivered), int(ticks), int(lost)))
    tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
    medians = {}
    for hook in ("on", "off"):
        if hook not in runs:
            continue
        rates = [d / s for _, s, d, _, _ in runs[hook]]
        costs = [t * tick_ns / d for _, _, d, t, _ in runs[hook] if d]
        lost = sum(r[4] for r in runs[hook])
        medians[hook] = (statistics.median(rates), statistics.median(costs))
        print("  hook %-3s delivered %10.0f pkt/s (median of %d; min %.0f max %.0f), "
              "kernel CPU %6.0f ns/pkt (min %.0f max %.0f), lost %d"
              % (hook, medians[hook][0], len(rates), min(rates), max(rates), medians[hook][1],
                 min(costs), max(costs), lost))
    if "on" in medians and "off" in medians:
        rate_cost = (medians["off"][0] - medians["on"][0]) / medians["off"][0] * 100
        cpu_cost = (medians["on"][1] - medians["off"][1]) / medians["off"][1] * 100
        print("  hook cost: throughput %+.2f %%, kernel CPU per packet %+.2f %%"
              % (rate_cost, cpu_cost))
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "paths":
        return paths(*argv[2:])
    if len(argv) == 3 and argv[1] == "throughput":
        return throughput(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
