#!/usr/bin/python3
"""The Python orchestrator example against real nichandoverd processes.

Writes JUnit XML to $XML_OUTPUT_FILE so each case is counted.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), "nichandover")
sys.path.insert(0, os.path.join(RUNFILES, "proto"))
sys.path.insert(0, os.path.join(RUNFILES, "examples", "orchestrator"))

import grpc  # noqa: E402
import orchestrator  # noqa: E402
from nichandover.v1 import resources_pb2  # noqa: E402

DAEMON = os.path.join(RUNFILES, "daemon", "nichandoverd")
EXAMPLE = os.path.join(RUNFILES, "examples", "orchestrator", "orchestrator.py")
FAKE_MACHINE = os.path.join(RUNFILES, "daemon", "platform", "fake", "fake_machine")
NIC = "0000:03:00.0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nhpy", dir="/tmp")
        self.ports = [free_port(), free_port()]
        self.procs = []
        ids = ["node0", "node1"]
        # Peers are always authenticated: a generated secret, owner-only.
        self.secret = os.path.join(self.dir, "cluster.secret")
        with open(os.open(self.secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(16).hex() + "\n")
        for i, node in enumerate(ids):
            other = 1 - i
            conf = (f'node_id: "{node}"\n'
                    f'listen: "unix:{self.sock(i)}"\n'
                    f'listen: "127.0.0.1:{self.ports[i]}"\n'
                    f'peers {{ node_id: "{ids[other]}" address: "127.0.0.1:{self.ports[other]}" }}\n'
                    f'cpus {{ cpu: 0 apic_id: {2 * i} }}\n'
                    f'platform {{ fake {{ state_path: "{self.dir}/machine.state" }} }}\n'
                    f'state_dir: "{self.dir}/{node}"\n'
                    f'peer_auth {{ secret_file: "{self.secret}" }}\n')
            with open(self.conf(i), "w") as f:
                f.write(conf)
        # The fake machine both daemons share: one MSI-X NIC owned by node0.
        with open(f"{self.dir}/machine.spec", "w") as f:
            f.write('nodes { node_id: "node0" cpus { cpu: 0 apic_id: 0 } }\n'
                    'nodes { node_id: "node1" cpus { cpu: 0 apic_id: 2 } }\n'
                    f'nics {{ bdf: "{NIC}" vector_count: 2 owner_node: "node0" '
                    'default_driver: "e1000e" }\n')
        subprocess.run([FAKE_MACHINE, "create", "--state", f"{self.dir}/machine.state",
                        "--spec", f"{self.dir}/machine.spec"], check=True)

    def sock(self, i):
        return f"{self.dir}/node{i}.sock"

    def conf(self, i):
        return f"{self.dir}/node{i}.conf"

    def start(self):
        for i in range(2):
            log = open(f"{self.dir}/node{i}.log", "w")
            self.procs.append(subprocess.Popen([DAEMON, "--config", self.conf(i)],
                                               stdout=log, stderr=log))
        for i in range(2):
            deadline = time.time() + 20
            while not os.path.exists(self.sock(i)):
                if time.time() > deadline:
                    raise RuntimeError(open(f"{self.dir}/node{i}.log").read())
                time.sleep(0.02)

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class OrchestratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster()
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


class JUnitResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.cases.append((test.id(), None))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.cases.append((test.id(), self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        super().addError(test, err)
        self.cases.append((test.id(), self._exc_info_to_string(err, test)))


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult)
    result = runner.run(suite)
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    if xml_path:
        failures = sum(1 for _, e in result.cases if e)
        root = ET.Element("testsuites", tests=str(len(result.cases)), failures=str(failures),
                          errors="0", disabled="0")
        ts = ET.SubElement(root, "testsuite", name="python_client_test",
                           tests=str(len(result.cases)), failures=str(failures), errors="0")
        for name, err in result.cases:
            tc = ET.SubElement(ts, "testcase", name=name)
            if err:
                ET.SubElement(tc, "failure", message="failed").text = err
        ET.ElementTree(root).write(xml_path, encoding="utf-8", xml_declaration=True)
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
