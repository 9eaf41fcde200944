#!/usr/bin/python3
"""The Python orchestrator example against real nichandoverd processes.

The daemons come from tests/fake_cluster.py.
"""

import json
import os
import subprocess
import sys
import unittest

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), "nichandover")
sys.path.insert(0, os.path.join(RUNFILES, "proto"))
sys.path.insert(0, os.path.join(RUNFILES, "examples", "orchestrator"))
sys.path.insert(0, os.path.join(RUNFILES, "tests"))

import grpc  # noqa: E402
import fake_cluster  # noqa: E402
import orchestrator  # noqa: E402
from nichandover.v1 import resources_pb2  # noqa: E402

EXAMPLE = os.path.join(RUNFILES, "examples", "orchestrator", "orchestrator.py")
NIC = fake_cluster.NIC


class OrchestratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = fake_cluster.Cluster()
        cls.cluster.start()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def test_grpc_is_debians(self):
        self.assertTrue(grpc.__version__.startswith("1.51"), grpc.__version__)

    def test_list_nodes_over_unix_socket(self):
        orch = orchestrator.Orchestrator(f"unix:{self.cluster.sock(0)}")
        nodes = list(orch.nodes())
        orch.close()
        self.assertEqual([n.node_id for n in nodes], ["node0", "node1"])
        self.assertTrue(nodes[0].local)
        self.assertEqual(nodes[1].state, resources_pb2.NODE_STATE_REACHABLE)
        self.assertEqual(nodes[1].cpus[0].apic_id, 2)

    def test_list_nodes_over_tcp(self):
        orch = orchestrator.Orchestrator(f"127.0.0.1:{self.cluster.ports[1]}")
        nodes = list(orch.nodes())
        orch.close()
        self.assertEqual(nodes[0].node_id, "node1")

    def test_cli_json(self):
        out = subprocess.run(
            ["/usr/bin/python3", EXAMPLE, "--server", f"unix:{self.cluster.sock(0)}",
             "--json", "nodes"],
            env=dict(os.environ, PYTHONPATH=os.path.join(RUNFILES, "proto")),
            capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        doc = json.loads(out.stdout)
        self.assertEqual(doc[0]["node_id"], "node0")
        self.assertEqual(doc[1]["state"], "NODE_STATE_REACHABLE")

    def test_handover_through_the_api(self):
        orch = orchestrator.Orchestrator(f"unix:{self.cluster.sock(0)}")
        try:
            nics = list(orch.nics())
            self.assertEqual([n.bdf for n in nics], [NIC])
            self.assertEqual(nics[0].ownership.owner_node, "node0")
            handover = orch.handover(NIC, "node1", request_id="py-1")
            # A retry with the same request_id is the same handover.
            self.assertEqual(orch.handover(NIC, "node1", request_id="py-1").handover_id,
                             handover.handover_id)
            phases = [e.phase for e in orch.watch(handover.handover_id)]
            self.assertEqual(phases[-1], resources_pb2.HANDOVER_PHASE_COMMITTED)
        finally:
            orch.close()
        orch = orchestrator.Orchestrator(f"unix:{self.cluster.sock(1)}")
        try:
            nic = list(orch.nics())[0]
            self.assertEqual(nic.ownership.owner_node, "node1")
            self.assertEqual(nic.ownership.epoch, 2)
            # Bad input comes back as INVALID_ARGUMENT naming the field.
            with self.assertRaises(grpc.RpcError) as ctx:
                orch.handover(NIC, "node1", request_id="py-2")
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("target_node", ctx.exception.details())
        finally:
            orch.close()

    def test_unreachable_server_is_unavailable(self):
        orch = orchestrator.Orchestrator(f"unix:{self.cluster.dir}/nobody.sock", timeout=2)
        with self.assertRaises(grpc.RpcError) as ctx:
            list(orch.nodes())
        orch.close()
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)


if __name__ == "__main__":
    sys.exit(fake_cluster.run_tests(__name__, "python_client_test"))
