#!/usr/bin/python3
"""nichandoverd's Prometheus metrics, scraped from two real daemons.

Scrapes while a handover runs and after it, and checks every scrape with both
real parsers of the exposition format: Prometheus' own `promtool check
metrics` (which also lints the naming conventions) and python3-prometheus-
client's text parser.
"""

import os
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), "nichandover")
sys.path.insert(0, os.path.join(RUNFILES, "proto"))
sys.path.insert(0, os.path.join(RUNFILES, "examples", "orchestrator"))
sys.path.insert(0, os.path.join(RUNFILES, "tests"))

import fake_cluster  # noqa: E402
import orchestrator  # noqa: E402
from nichandover.v1 import resources_pb2  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

# Generous for a loaded 2-core machine; every wait polls for the event.
TIMEOUT = 60 * float(os.environ.get("NH_TIMEOUT_SCALE", "1"))


def scrape_text(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode("utf-8")


def parse(text):
    """{(sample name, frozenset(labels)): value} through prometheus_client."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool_problems(text):
    """What `promtool check metrics` says of `text` (empty when it is clean)."""
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    problems = (out.stdout + out.stderr).strip()
    if out.returncode != 0 and not problems:
        problems = f"promtool exited {out.returncode}"
    return problems


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.metrics_ports = [fake_cluster.free_port(), fake_cluster.free_port()]
        cls.cluster = fake_cluster.Cluster(
            lambda i: f'metrics_listen: "127.0.0.1:{cls.metrics_ports[i]}"\n')
        cls.cluster.start()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def scrape(self, node):
        """Scrapes node's metrics, checks them with both parsers, returns the samples."""
        status, content_type, text = scrape_text(self.metrics_ports[node])
        self.assertEqual(status, 200)
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(promtool_problems(text), "", text)
        return parse(text)

    def wait_for(self, node, predicate, what):
        deadline = time.time() + TIMEOUT
        while True:
            samples = self.scrape(node)
            if predicate(samples):
                return samples
            if time.time() > deadline:
                self.fail(f"node{node}: {what} did not happen in {TIMEOUT}s; log:\n"
                          f"{self.cluster.log(node)}")
            time.sleep(0.1)

    def test_1_idle_daemon(self):
        s = self.scrape(0)
        self.assertEqual(value(s, "nichandover_build_info", version="0.1.0",
                               api_version="nichandover.v1", node="node0"), 1)
        for role in ("source", "target"):
            for outcome in ("committed", "rolled_back", "failed"):
                self.assertEqual(value(s, "nichandover_handovers_total", role=role,
                                       outcome=outcome), 0)
        self.assertEqual(value(s, "nichandover_nics", state="running_here"), 1)
        self.assertEqual(value(s, "nichandover_nics", state="running_elsewhere"), 0)
        self.assertEqual(value(self.scrape(1), "nichandover_nics", state="running_elsewhere"), 1)
        # The prober says hello to the peer as soon as the daemon starts.
        self.wait_for(0, lambda s: value(s, "nichandover_peer_up", peer="node1") == 1,
                      "peer_up{peer=node1} == 1")

    def test_2_handover_is_counted_on_both_nodes(self):
        # Scrape both daemons continuously while the handover runs.
        stop = threading.Event()
        scrapes, errors = [], []

        def scraper():
            while not stop.is_set():
                for node in (0, 1):
                    try:
                        text = scrape_text(self.metrics_ports[node])[2]
                        parse(text)
                        scrapes.append(text)
                    except Exception as e:  # noqa: BLE001 - reported below
                        errors.append(repr(e))
                time.sleep(0.01)

        thread = threading.Thread(target=scraper)
        thread.start()
        orch = orchestrator.Orchestrator(f"unix:{self.cluster.sock(0)}")
        try:
            handover = orch.handover(fake_cluster.NIC, "node1", request_id="metrics-1")
            events = list(orch.watch(handover.handover_id))
            phases = [e.phase for e in events]
        finally:
            orch.close()
            stop.set()
            thread.join()
        self.assertEqual(phases[-1], resources_pb2.HANDOVER_PHASE_COMMITTED)
        self.assertEqual(errors, [])
        self.assertGreater(len(scrapes), 0)
        self.assertEqual(promtool_problems(scrapes[len(scrapes) // 2]), "")

        src = self.wait_for(0, lambda s: value(s, "nichandover_handovers_total", role="source",
                                                 outcome="committed") == 1,
                            "handovers_total{source,committed} == 1")
        self.assertEqual(value(src, "nichandover_handover_blackout_seconds_count"), 1)
        self.assertGreater(value(src, "nichandover_handover_blackout_seconds_sum"), 0)
        self.assertEqual(value(src, "nichandover_handover_phase_duration_seconds_count",
                               role="source", phase="quiescing"), 1)
        self.assertEqual(value(src, "nichandover_handover_duration_seconds_count",
                               role="source", outcome="committed"), 1)
        # The fake machine has a kernel commit path, so the default (auto)
        # takes it: the source's quiesce and reroute are inside one hand-off.
        self.assertEqual(events[-1].handover.commit_path, resources_pb2.COMMIT_PATH_KERNEL)
        self.assertGreaterEqual(value(src, "nichandover_platform_call_duration_seconds_count",
                                      interface="fast_path", call="hand-off"), 1)
        self.assertIsNone(value(src, "nichandover_platform_call_duration_seconds_count",
                                interface="hook", call="quiesce"))
        self.assertGreater(value(src, "nichandover_journal_sync_duration_seconds_count"), 0)
        self.assertGreater(value(src, "nichandover_peer_message_duration_seconds_count",
                                 peer="node1"), 0)
        self.assertEqual(value(src, "nichandover_peer_up", peer="node1"), 1)
        self.assertEqual(value(src, "nichandover_nics", state="running_elsewhere"), 1)
        self.assertEqual(value(src, "nichandover_nics", state="running_here"), 0)

        dst = self.wait_for(1, lambda s: value(s, "nichandover_handovers_total", role="target",
                                                 outcome="committed") == 1,
                            "handovers_total{target,committed} == 1")
        self.assertEqual(value(dst, "nichandover_handovers_total", role="source",
                               outcome="committed"), 0)
        self.assertGreaterEqual(value(dst, "nichandover_platform_call_duration_seconds_count",
                                      interface="hook", call="attach"), 1)
        self.assertEqual(value(dst, "nichandover_nics", state="running_here"), 1)
        # Only the source measures the blackout.
        self.assertEqual(value(dst, "nichandover_handover_blackout_seconds_count"), 0)
        # Each daemon logs the finished handover once, with its id.
        line = f"handover {handover.handover_id}: {fake_cluster.NIC} node0 -> node1 committed"
        self.assertEqual(self.cluster.log(0).count(line), 1, self.cluster.log(0))
        self.assertIn("(blackout ", self.cluster.log(0).split(line)[1].split("\n")[0])
        self.assertEqual(self.cluster.log(1).count(line), 1, self.cluster.log(1))

    def test_3_http_errors(self):
        port = self.metrics_ports[0]
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            scrape_text(port, "/nothing")
        self.assertEqual(ctx.exception.code, 404)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x",
                                         method="POST")
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(request, timeout=30)
        self.assertEqual(ctx.exception.code, 405)

    def test_4_stopped_peer_is_down(self):
        self.cluster.stop_node(0)
        self.wait_for(1, lambda s: value(s, "nichandover_peer_up", peer="node0") == 0,
                      "peer_up{peer=node0} == 0")


if __name__ == "__main__":
    sys.exit(fake_cluster.run_tests(__name__, "metrics_test"))
