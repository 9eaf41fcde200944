#!/usr/bin/python3
"""A small orchestration client for nichandover, the way tools call the API.

It talks gRPC to one node's nichandoverd (nichandover.v1.NodeService) with the
stubs generated from proto/ by the system protoc and grpc_python_plugin, using
Debian's python3-grpcio:

    orchestrator.py --server unix:/run/nichandover/nichandoverd.sock nodes
    orchestrator.py --server 127.0.0.1:7401 handover 0000:03:00.0 --to node1

Run it with /usr/bin/python3 (Debian's interpreter sees python3-grpcio) and
PYTHONPATH pointing at the generated modules (see README.md here).
"""

import argparse
import json
import sys
import uuid

import grpc
from google.protobuf import json_format

from nichandover.v1 import node_service_pb2
from nichandover.v1 import node_service_pb2_grpc
from nichandover.v1 import resources_pb2


class Orchestrator:
    """Thin wrapper over NodeService with the retry rules of the API.

    UNAVAILABLE means "retry the call"; ABORTED "retry at a higher level";
    FAILED_PRECONDITION "fix the state first". CreateHandover carries a
    request_id so a retry after a lost answer does not start a second move.
    """

    def __init__(self, server, timeout=10.0):
        self._channel = grpc.insecure_channel(server)
        self._stub = node_service_pb2_grpc.NodeServiceStub(self._channel)
        self._timeout = timeout

    def close(self):
        self._channel.close()

    def nodes(self):
        return self._stub.ListNodes(node_service_pb2.ListNodesRequest(),
                                    timeout=self._timeout).nodes

    def nics(self):
        return self._stub.ListNics(node_service_pb2.ListNicsRequest(),
                                   timeout=self._timeout).nics

    def handover(self, nic, target, request_id=None, retries=3):
        request = node_service_pb2.CreateHandoverRequest(
            request_id=request_id or uuid.uuid4().hex, nic=nic, target_node=target)
        for attempt in range(retries):
            try:
                return self._stub.CreateHandover(request, timeout=self._timeout)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or attempt + 1 == retries:
                    raise
        raise AssertionError("unreachable")

    def watch(self, handover_id):
        request = node_service_pb2.WatchHandoverRequest(handover_id=handover_id)
        for event in self._stub.WatchHandover(request):
            yield event


def _print(message_or_list, as_json):
    if as_json:
        if isinstance(message_or_list, list):
            doc = [json_format.MessageToDict(m, preserving_proto_field_name=True)
                   for m in message_or_list]
        else:
            doc = json_format.MessageToDict(message_or_list, preserving_proto_field_name=True)
        print(json.dumps(doc, indent=2))
    else:
        for m in message_or_list if isinstance(message_or_list, list) else [message_or_list]:
            print(m)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="unix:/run/nichandover/nichandoverd.sock")
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("nodes", help="list the nodes")
    sub.add_parser("nics", help="list the NICs")
    h = sub.add_parser("handover", help="hand a NIC over and follow it to the end")
    h.add_argument("nic")
    h.add_argument("--to", required=True)
    h.add_argument("--request-id")
    args = parser.parse_args(argv)

    orch = Orchestrator(args.server)
    try:
        if args.command == "nodes":
            nodes = list(orch.nodes())
            if args.json:
                _print(nodes, True)
            else:
                for n in nodes:
                    state = resources_pb2.NodeState.Name(n.state)
                    print(f"{n.node_id}\t{'local' if n.local else 'peer'}\t{state}")
        elif args.command == "nics":
            _print(list(orch.nics()), args.json)
        elif args.command == "handover":
            handover = orch.handover(args.nic, args.to, args.request_id)
            last = handover
            for event in orch.watch(handover.handover_id):
                last = event.handover
                if not args.json:
                    print(resources_pb2.HandoverPhase.Name(event.phase), event.message)
            if args.json:
                _print(last, True)
            return 0 if last.phase == resources_pb2.HANDOVER_PHASE_COMMITTED else 1
    except grpc.RpcError as err:
        print(f"orchestrator: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        orch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
