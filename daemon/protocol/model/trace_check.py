#!/usr/bin/env python3
"""Replays protocol traces through the model's transition relation.

    trace_check.py TRACE...

A trace (written by random_fault_test with NICHANDOVER_TRACE_DIR; format in
docs/protocol.md, "Traces") is World's log of one randomized run: a header
naming nodes and NICs, then one line per event in or action out. This checker
drives the platform part of daemon/protocol/model/handover.pml along it:
every platform call that took effect is a step of the model's `apply`, every
call a daemon issued must satisfy the guard under which the model's daemon
issues it (the same step names), and after every step the model's invariants
must hold. It fails, naming the trace and line, on a step the model forbids.

Why a driver of the transition relation instead of spin per trace: a trace
has three nodes, two NICs and hundreds of steps; a Promela driver generated
per trace needs one gcc build of pan per trace (tens of seconds each on a
loaded machine), so 200 traces would not fit in a test. The model's platform
steps are small and are mirrored here one to one (`apply_*` below ↔ `apply`
in the model); NICs do not share protocol state, so each NIC is checked on its
own, whichever pair of nodes it moves between.
"""

import re
import sys

REC_RE = re.compile(r"(ACTIVE|PREPARING|HANDOFF)\((\w+)(?:->(\w+))?,(\d+)\)")
OP_RE = re.compile(
    r"^(?P<node>\w+): (?P<late>late )?(?P<kind>[a-z-]+) (?P<bdf>[0-9a-f:.]+)(?P<args>.*?) => "
    r"(?P<result>.*)$")
MUTATING = {"quiesce", "resume", "attach", "release", "reroute", "restore", "reserve",
            "release-reservation", "arm", "hand-off"}
# Kernel lines (the kernel commit path, issue 14), written by World's kernel model.
DOORBELL_RE = re.compile(
    r"^(?P<node>\w+): doorbell (?P<bdf>[0-9a-f:.]+) epoch=(?P<epoch>\d+) -> (?P<to>\w+)"
    r"(?P<lost> lost)?$")
KERNEL_EVENT_RE = re.compile(
    r"^(?P<node>\w+): kernel-event (?P<kind>[\w-]+) (?P<bdf>[0-9a-f:.]+) epoch=(?P<epoch>\d+)$")
# FastPath::HandOff's stages in order (platform::HandOffStageName).
HANDOFF_STAGES = ["nothing", "quiesced", "rerouted", "rings-written", "handed-off",
                  "doorbell-rung"]


def parse_fence(args):
    """The call's fence (epoch, incarnation, counter) from `epoch=<e>
    op=<incarnation>.<counter>`; a line without op= (hand-written traces)
    counts as operation id 0. Compared as tuples, like common/fence.h's
    (epoch, op_id) with op_id = incarnation << 32 | counter."""
    epoch_m = re.search(r"epoch=(\d+)", args)
    op_m = re.search(r"\bop=(\d+)\.(\d+)", args)
    e = int(epoch_m.group(1)) if epoch_m else 0
    return (e, int(op_m.group(1)), int(op_m.group(2))) if op_m else (e, 0, 0)


def fence_text(fence):
    return "epoch %d op %d.%d" % fence


def parse_records(text):
    """Every record in `text`, in order."""
    return [(m.group(1), m.group(2), m.group(3) or m.group(2), int(m.group(4)))
            for m in REC_RE.finditer(text)]


def parse_record(text):
    m = REC_RE.search(text)
    if not m:
        return None
    state, owner, target, epoch = m.group(1), m.group(2), m.group(3), int(m.group(4))
    return (state, owner, target or owner, epoch)


class Forbidden(Exception):
    pass


class Nic:
    def __init__(self, owner, epoch, nodes):
        self.record = ("ACTIVE", owner, owner, epoch)
        self.history = {self.record}  # every record the NIC has had
        # Per node: [state, the highest fence accepted (see parse_fence)].
        self.hook = {n: ["DETACHED", (0, 0, 0)] for n in nodes}
        self.hook[owner] = ["RUNNING", (epoch, 0, 0)]
        # The handoff rings beside the record keep a fence of their own.
        self.rings_fence = (0, 0, 0)
        self.irq = owner
        self.masked = False
        self.reserved = {}     # node -> epoch of its reservation (reserve .. release-reservation)
        self.armed = {}        # node -> the HANDOFF record its kernel is armed for
        self.doorbells = {}    # node -> epochs of doorbells rung to its kernel, not yet taken
        self.kernel_commits = set()  # (node, epoch) its kernel committed
        self.kernel_outcomes = set()  # (node, epoch) its kernel took a doorbell without commit
        # (source, epoch) of hand-offs whose doorbell line came before the
        # hand-off's own line (written when the call returns): the doorbell
        # implies the CAS won, so the checker applied it then.
        self.rung_before_result = set()


class Replay:
    def __init__(self, path):
        self.path = path
        self.nodes = {}  # id -> apic
        self.apic_node = {}
        self.nics = {}
        self.up = set()
        self.steps = 0

    def node_of(self, messages):
        apics = {int(a) for a in re.findall(r"apic(\d+)/", messages)}
        if len(apics) != 1:
            return None
        return self.apic_node.get(apics.pop())

    def fail(self, lineno, line, why):
        raise Forbidden(f"{self.path}:{lineno}: the model forbids: {why}\n    {line}")

    # -- the model's daemon guards: a daemon issues this call only if ... --
    def guard(self, nic, node, kind, args):
        epoch_m = re.search(r"epoch=(\d+)", args)
        e = int(epoch_m.group(1)) if epoch_m else 0
        hist = nic.history
        if kind == "cas":
            recs = REC_RE.findall(args)
            if len(recs) != 2:
                return "a CAS without expected and desired records"
            x = parse_record("%s(%s%s,%s)" % (recs[0][0], recs[0][1],
                                              "->" + recs[0][2] if recs[0][2] else "", recs[0][3]))
            d = parse_record("%s(%s%s,%s)" % (recs[1][0], recs[1][1],
                                              "->" + recs[1][2] if recs[1][2] else "", recs[1][3]))
            ok = ((x[0] == "ACTIVE" and d[0] == "PREPARING" and d[1] == x[1] == node and
                   d[3] == x[3] + 1) or                                   # W_PCAS
                  (x[0] == "PREPARING" and d[0] == "HANDOFF" and x[1:] == d[1:] and
                   x[1] == node) or                                       # W_HCAS
                  (x[0] == "HANDOFF" and d[0] == "ACTIVE" and d[1] == x[2] == node and
                   d[3] == x[3]) or                                       # W_CCAS / COMMIT
                  (d[0] == "ACTIVE" and d[1] == x[1] and d[3] > x[3]))   # W_ACAS, W_VCAS, ABORT, R4
            return None if ok else "CAS %s -> %s is none of the model's CAS steps" % (x, d)
        if kind == "arm":
            recs = parse_records(args)
            if len(recs) != 1 or recs[0][0] != "HANDOFF" or recs[0][2] != node or \
                    recs[0][3] != e:
                return "arm at epoch %d for %s, not HANDOFF(*->%s,%d)" % (
                    e, recs, node, e)
            if ("ACTIVE", recs[0][1], recs[0][1], e - 1) not in hist:
                return "arm for %s: the record was never ACTIVE(%s,%d), the offer's start" % (
                    recs[0], recs[0][1], e - 1)
            return None
        if kind == "hand-off":
            recs = parse_records(args)
            if len(recs) != 2 or recs[0][0] != "PREPARING" or recs[1][0] != "HANDOFF" or \
                    recs[0][1:] != recs[1][1:] or recs[0][1] != node or recs[0][3] != e:
                return "hand-off %s is not PREPARING(%s->T,%d) -> HANDOFF(%s->T,%d)" % (
                    recs, node, e, node, e)
            if recs[0] not in hist:
                return "hand-off before the PREPARING CAS won: the record was never %s" % (
                    recs[0],)
            return None
        if kind == "attach" and ("ACTIVE", node, node, e) not in hist:
            return "attach at epoch %d before the commit CAS made %s the owner" % (e, node)
        if kind == "reroute" and not any(r[0] == "PREPARING" and r[1] == node and r[3] == e
                                         for r in hist):
            return "reroute at epoch %d without PREPARING(%s->*,%d)" % (e, node, e)
        if kind == "restore" and ("ACTIVE", node, node, e) not in hist:
            return "restore at epoch %d without the rollback record ACTIVE(%s,%d)" % (e, node, e)
        if kind == "quiesce" and not (("ACTIVE", node, node, e) in hist or any(
                r[0] == "PREPARING" and r[1] == node and r[3] == e for r in hist)):
            return "quiesce at epoch %d without PREPARING or ACTIVE naming %s" % (e, node)
        if kind == "resume" and not any(r[0] == "ACTIVE" and r[1] == node and r[3] <= e
                                        for r in hist):
            return "resume at epoch %d of a node never ACTIVE at or below it" % e
        if kind == "release" and not any(r[1] != node for r in hist):
            return "release by %s, which every record names as owner" % node
        return None

    # -- the model's `apply` --
    def apply(self, nic, node, kind, args, result, lineno, line):
        ok = result.startswith("ok")
        if kind == "cas":
            got = parse_record(result) if ok else None
            recs = REC_RE.findall(args)
            x = parse_record("%s(%s%s,%s)" % (recs[0][0], recs[0][1],
                                              "->" + recs[0][2] if recs[0][2] else "", recs[0][3]))
            d = parse_record("%s(%s%s,%s)" % (recs[1][0], recs[1][1],
                                              "->" + recs[1][2] if recs[1][2] else "", recs[1][3]))
            if not ok:
                return
            if x == nic.record:
                if d[3] < nic.record[3]:
                    self.fail(lineno, line, "the record's epoch goes back")
                nic.record = d
                nic.history.add(d)
            if got != nic.record:
                self.fail(lineno, line, "the CAS answered %s, the model's record is %s" %
                          (got, nic.record))
            return
        if kind == "read-record":
            if ok and parse_record(result) != nic.record:
                self.fail(lineno, line, "read %s, the model's record is %s" %
                          (parse_record(result), nic.record))
            return
        if kind == "write-rings" and ok:
            self.accept_rings_fence(nic, parse_fence(args), lineno, line)
            return
        failed_part_way = kind == "hand-off" and not ok and "reached=" in result
        if kind not in MUTATING or not (ok or failed_part_way):
            # A refused or failed call has no effect (model: res_ok = 0). A
            # failed hand-off may have quiesced and rerouted (the contract: the
            # caller reads the record and reconciles); when the trace does not
            # say how far it got, the checker keeps the hook as it was.
            return
        fence = parse_fence(args)
        e = fence[0]
        hook = nic.hook[node]
        # The op_id fence (R3): a call below the highest fence the node's
        # platform accepted for the NIC (a lower epoch, or a late call of
        # the current epoch overtaken by a newer one) must be refused.
        if fence < hook[1]:
            self.fail(lineno, line, "the platform accepted %s below the highest fence %s" %
                      (fence_text(fence), fence_text(hook[1])))
        hook[1] = fence
        if kind == "hand-off":
            self.apply_handoff(nic, node, args, result, lineno, line, failed_part_way)
            return
        if kind == "reserve":
            nic.reserved[node] = e
        elif kind == "release-reservation":
            nic.reserved.pop(node, None)
            nic.armed.pop(node, None)  # ReleaseReservation disarms
        elif kind == "arm":
            if nic.reserved.get(node) != e:
                self.fail(lineno, line, "armed at epoch %d without a reservation at it" % e)
            nic.armed[node] = parse_records(args)[0]
        elif kind == "quiesce":
            hook[0] = "QUIESCED"
        elif kind == "resume":
            hook[0] = "RUNNING"
            nic.masked = False
        elif kind == "attach":
            hook[0] = "RUNNING"
            nic.masked = False
        elif kind == "release":
            hook[0] = "DETACHED"
        elif kind in ("reroute", "restore"):
            to = re.search(r"to=(\[[^\]]*\])", args)
            target = self.node_of(to.group(1)) if to else None
            if target is None:
                self.fail(lineno, line, "messages that name no single node")
            nic.irq = target
            if kind == "restore":
                nic.masked = True

    def accept_rings_fence(self, nic, fence, lineno, line):
        if fence < nic.rings_fence:
            self.fail(lineno, line, "the handoff rings took a write at %s below their fence %s" %
                      (fence_text(fence), fence_text(nic.rings_fence)))
        nic.rings_fence = fence

    # -- FastPath::HandOff: the model's handoff_first and handoff_second --
    def apply_handoff(self, nic, node, args, result, lineno, line, failed=False):
        stage_m = re.search(r"reached=([a-z-]+)", result)
        if not stage_m or stage_m.group(1) not in HANDOFF_STAGES:
            self.fail(lineno, line, "a hand-off result without a known reached=<stage>")
        stage = HANDOFF_STAGES.index(stage_m.group(1))
        expected, desired = parse_records(args)[:2]
        if stage >= HANDOFF_STAGES.index("quiesced"):
            nic.hook[node][0] = "QUIESCED"
        if stage >= HANDOFF_STAGES.index("rerouted"):
            to = re.search(r"to=(\[[^\]]*\])", args)
            target = self.node_of(to.group(1)) if to else None
            if target is None or target != desired[2]:
                self.fail(lineno, line, "a hand-off rerouting to %s, not its target %s" %
                          (target, desired[2]))
            nic.irq = target
        if stage < HANDOFF_STAGES.index("rings-written"):
            return
        self.accept_rings_fence(nic, parse_fence(args), lineno, line)
        if failed and stage < HANDOFF_STAGES.index("handed-off"):
            return  # stopped before its CAS: the record is as it was
        record_m = re.search(r"record=(\S+)", result)
        got = parse_record(record_m.group(1)) if record_m else None
        if got is None:
            self.fail(lineno, line, "a hand-off that ran to its CAS without record=<R>")
        won = got == desired
        if won != (stage >= HANDOFF_STAGES.index("handed-off")):
            self.fail(lineno, line, "reached=%s with the record %s after the CAS" %
                      (HANDOFF_STAGES[stage], got))
        if (node, expected[3]) in nic.rung_before_result:
            nic.rung_before_result.discard((node, expected[3]))
            if not won:
                self.fail(lineno, line, "a doorbell was rung, but the HANDOFF CAS did not win "
                          "(record %s)" % (got,))
            return  # applied at the doorbell
        if won:
            if nic.record != expected:
                self.fail(lineno, line, "the HANDOFF CAS won against %s, the model's record" %
                          (nic.record,))
            nic.record = desired
            nic.history.add(desired)
        elif got != nic.record or got == expected:
            self.fail(lineno, line, "the HANDOFF CAS lost with %s, the model's record is %s" %
                      (got, nic.record))

    # -- the kernels: doorbells, the armed kernel's commit, its events --
    def doorbell(self, nic, m, lineno, line):
        node, to, e = m.group("node"), m.group("to"), int(m.group("epoch"))
        if to not in self.nodes:
            self.fail(lineno, line, "a doorbell to %s, no node of the trace" % to)
        # A hand-off rings only after its CAS won (DOORBELL_BEFORE_CAS), so
        # a doorbell of a hand-off whose line is still to come (the call has
        # not returned) stands for its CAS, quiesce and reroute; its line
        # must then report the CAS won.
        if nic.record == ("PREPARING", node, to, e):
            nic.record = ("HANDOFF", node, to, e)
            nic.history.add(nic.record)
            nic.hook[node][0] = "QUIESCED"
            nic.hook[node][1] = max(nic.hook[node][1], (e, 0, 0))
            nic.irq = to
            nic.rung_before_result.add((node, e))
        if not m.group("lost"):
            nic.doorbells.setdefault(to, []).append(e)

    def kernel_commit(self, nic, node, args, result, lineno, line):
        epoch_m = re.search(r"epoch=(\d+)", args)
        if not epoch_m:
            self.fail(lineno, line, "a kernel-commit without epoch=<e>")
        e = int(epoch_m.group(1))
        pending = nic.doorbells.get(node, [])
        if e not in pending:
            self.fail(lineno, line, "%s's kernel acts on a doorbell at epoch %d that nobody "
                      "rang (or that was lost)" % (node, e))
        pending.remove(e)
        armed = nic.armed.get(node)
        if result.startswith("ignored"):
            # A kernel not armed for (NIC, e), or whose record is not exactly
            # the armed HANDOFF, ignores the doorbell; one that is must not.
            if armed is not None and armed[3] == e and nic.record == armed:
                self.fail(lineno, line, "%s's kernel ignored a doorbell it was armed for, with "
                          "the record exactly %s" % (node, armed))
            nic.kernel_outcomes.add((node, e))
            return
        recs = parse_records(args)
        if len(recs) != 2 or recs[0][0] != "HANDOFF" or recs[1] != ("ACTIVE", node, node, e) or \
                recs[0][2] != node or recs[0][3] != e:
            self.fail(lineno, line, "kernel-commit %s is not HANDOFF(S->%s,%d) -> "
                      "ACTIVE(%s,%d)" % (recs, node, e, node, e))
        handoff, active = recs
        armed_for_it = armed == handoff
        if result.startswith("ok"):
            # KERNEL_COMMIT_NO_RECORD_CHECK: only on an arm for exactly that
            # HANDOFF, and only while the record is exactly it.
            if not armed_for_it:
                self.fail(lineno, line, "%s's kernel commits %s, armed for %s" %
                          (node, handoff, nic.armed.get(node)))
            if nic.record != handoff:
                self.fail(lineno, line, "%s's kernel commits while the record is %s, not the "
                          "armed %s" % (node, nic.record, handoff))
            nic.record = active
            nic.history.add(active)
            del nic.armed[node]
            hook = nic.hook[node]
            if e < hook[1][0]:
                self.fail(lineno, line, "the kernel attached at epoch %d below the fence %s" %
                          (e, fence_text(hook[1])))
            # The kernel acts under its arm's fence and never lowers the
            # hook's (the Arm call raised it to at least that).
            hook[0], hook[1] = "RUNNING", max(hook[1], (e, 0, 0))
            nic.masked = False
            nic.kernel_commits.add((node, e))
        elif result.startswith("lost"):
            got = parse_record(result)
            if not armed_for_it:
                self.fail(lineno, line, "%s's kernel tried a CAS it was not armed for "
                          "(armed: %s)" % (node, nic.armed.get(node)))
            if got is None or got != nic.record or got == handoff:
                self.fail(lineno, line, "the kernel's CAS lost with %s, the model's record is "
                          "%s" % (got, nic.record))
            nic.kernel_outcomes.add((node, e))
        else:
            self.fail(lineno, line, "kernel-commit result %r is none of ok, lost, ignored" %
                      result)

    def kernel_event(self, nic, m, lineno, line):
        node, e = m.group("node"), int(m.group("epoch"))
        kind = re.sub(r"[^a-z]", "", m.group("kind").lower())
        if kind in ("committed", "kcommitted"):
            if (node, e) not in nic.kernel_commits:
                self.fail(lineno, line, "a committed event of %s's kernel at epoch %d, which "
                          "never committed" % (node, e))
        elif kind in ("notcommitted", "knotcommitted"):
            if (node, e) not in nic.kernel_outcomes and not any(
                    n == node for n, _ in nic.kernel_outcomes):
                self.fail(lineno, line, "a not-committed event of %s's kernel, which took no "
                          "doorbell" % node)
        else:
            self.fail(lineno, line, "unknown kernel event %r" % m.group("kind"))

    def invariants(self, lineno, line):
        for bdf, nic in self.nics.items():
            running = [n for n, h in nic.hook.items() if h[0] == "RUNNING"]
            if len(running) > 1:
                self.fail(lineno, line, "%s runs on %s" % (bdf, " and ".join(running)))
            if running and running[0] != nic.irq:
                self.fail(lineno, line, "%s runs on %s, its interrupts go to %s" %
                          (bdf, running[0], nic.irq))

    def run(self):
        with open(self.path) as f:
            lines = f.read().splitlines()
        for lineno, line in enumerate(lines, 1):
            if line.startswith("#"):
                continue
            m = re.match(r"^node (\w+) apic=(\d+)$", line)
            if m:
                self.nodes[m.group(1)] = int(m.group(2))
                self.apic_node[int(m.group(2))] = m.group(1)
                self.up.add(m.group(1))  # every daemon runs at the start
                continue
            m = re.match(r"^nic (\S+) owner=(\w+) epoch=(\d+)$", line)
            if m:
                self.nics[m.group(1)] = Nic(m.group(2), int(m.group(3)), list(self.nodes))
                continue
            m = re.match(r"^(\w+): (CRASH|RESTART)", line)
            if m:
                (self.up.discard if m.group(2) == "CRASH" else self.up.add)(m.group(1))
                continue
            m = DOORBELL_RE.match(line) or KERNEL_EVENT_RE.match(line)
            if m and m.group("bdf") in self.nics:
                nic = self.nics[m.group("bdf")]
                if m.re is DOORBELL_RE:
                    self.doorbell(nic, m, lineno, line)
                else:
                    self.kernel_event(nic, m, lineno, line)
                self.steps += 1
                continue
            m = OP_RE.match(line)
            if not m or m.group("bdf") not in self.nics:
                continue
            if m.group("kind") == "kernel-commit":
                # A kernel step: runs whatever its daemon does (up or down).
                self.kernel_commit(self.nics[m.group("bdf")], m.group("node"), m.group("args"),
                                   m.group("result"), lineno, line)
                self.steps += 1
                self.invariants(lineno, line)
                continue
            node, kind, args, result = m.group("node"), m.group("kind"), m.group("args"), \
                m.group("result")
            nic = self.nics[m.group("bdf")]
            late = m.group("late") is not None
            if not late:
                # Only a running daemon issues calls; a late call was issued before.
                if node not in self.up:
                    self.fail(lineno, line, "a call from %s, whose daemon is down" % node)
                why = self.guard(nic, node, kind, args)
                if why:
                    self.fail(lineno, line, why)
            if result == "hangs" or result.startswith("not run"):
                continue  # no effect now; a hung call appears again as "late"
            self.apply(nic, node, kind, args, result.split(", then the daemon crashes")[0],
                       lineno, line)
            self.steps += 1
            self.invariants(lineno, line)
        if not self.nics:
            raise Forbidden(f"{self.path}: no header (node/nic lines): not a trace")
        return self.steps


def main(paths):
    if not paths:
        print("usage: trace_check.py TRACE...", file=sys.stderr)
        return 2
    total = 0
    for path in paths:
        try:
            total += Replay(path).run()
        except Forbidden as e:
            print(e, file=sys.stderr)
            return 1
    print("trace_check: %d traces, %d platform steps, all allowed by the model" %
          (len(paths), total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
