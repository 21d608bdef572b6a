"""Container health check: exit 0 when the gRPC server at ADDRESS reports SERVICE as SERVING.

    python healthcheck.py [ADDRESS] [SERVICE]    (defaults: 127.0.0.1:7700, "" = the whole server)

Uses the standard grpc.health.v1 service that every Lookalike server registers, so Docker,
Kubernetes and compose all probe the same thing the coordinator and nodes actually serve.
Exit codes: 0 serving, 1 not serving or unknown service, 2 unreachable or timed out.
(Not named grpc_health.py: run as a script, that name would shadow the grpc_health package.)
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> int:
    with grpc.insecure_channel(address) as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            code = exc.code()
            print(
                f"{address} {service or '(server)'}: {code.name} {exc.details() or ''}".rstrip(),
                file=sys.stderr,
            )
            return 1 if code == grpc.StatusCode.NOT_FOUND else 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"{address} {service or '(server)'}: {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:7700"
    service = argv[2] if len(argv) > 2 else ""
    return check(address, service)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
