"""Two real nichandoverd processes on the fake platform, for Python tests.

Each daemon serves operators on a unix socket and a loopback TCP port, and
its peer on another loopback TCP port (peer_listen); they share one
fake machine with one MSI-X NIC owned by node0. run_tests() writes JUnit XML
to $XML_OUTPUT_FILE so each case is counted.
"""

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
DAEMON = os.path.join(RUNFILES, "daemon", "nichandoverd")
FAKE_MACHINE = os.path.join(RUNFILES, "daemon", "platform", "fake", "fake_machine")
NIC = "0000:03:00.0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`extra_conf(i)` adds configuration lines to node i's file."""

    def __init__(self, extra_conf=lambda i: ""):
        self.dir = tempfile.mkdtemp(prefix="nhpy", dir="/tmp")
        self.ports = [free_port(), free_port()]
        self.peer_ports = [free_port(), free_port()]
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
                    f'peer_listen: "127.0.0.1:{self.peer_ports[i]}"\n'
                    f'peers {{ node_id: "{ids[other]}" address: "127.0.0.1:{self.peer_ports[other]}" }}\n'
                    f'cpus {{ cpu: 0 apic_id: {2 * i} }}\n'
                    f'platform {{ fake {{ state_path: "{self.dir}/machine.state" }} }}\n'
                    f'state_dir: "{self.dir}/{node}"\n'
                    f'peer_auth {{ secret_file: "{self.secret}" }}\n' + extra_conf(i))
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

    def log(self, i):
        with open(f"{self.dir}/node{i}.log") as f:
            return f.read()

    def start(self):
        for i in range(2):
            log = open(f"{self.dir}/node{i}.log", "w")
            self.procs.append(subprocess.Popen([DAEMON, "--config", self.conf(i)],
                                               stdout=log, stderr=log))
        for i in range(2):
            deadline = time.time() + 20
            while not os.path.exists(self.sock(i)):
                if time.time() > deadline:
                    raise RuntimeError(self.log(i))
                time.sleep(0.02)

    def stop_node(self, i):
        if self.procs[i].poll() is None:
            self.procs[i].send_signal(signal.SIGTERM)
        self.procs[i].wait(timeout=30)

    def stop(self):
        for i in range(len(self.procs)):
            self.stop_node(i)
        shutil.rmtree(self.dir, ignore_errors=True)


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


def run_tests(module_name, suite_name):
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module_name])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult)
    result = runner.run(suite)
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    if xml_path:
        failures = sum(1 for _, e in result.cases if e)
        root = ET.Element("testsuites", tests=str(len(result.cases)), failures=str(failures),
                          errors="0", disabled="0")
        ts = ET.SubElement(root, "testsuite", name=suite_name,
                           tests=str(len(result.cases)), failures=str(failures), errors="0")
        for name, err in result.cases:
            tc = ET.SubElement(ts, "testcase", name=name)
            if err:
                ET.SubElement(tc, "failure", message="failed").text = err
        ET.ElementTree(root).write(xml_path, encoding="utf-8", xml_declaration=True)
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1
