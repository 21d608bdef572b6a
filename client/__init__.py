"""The Lookalike client SDK: `Client(address).remake(sample, out=...)`.

Needs only grpcio and protobuf: no torch, ray, cupy or kernels.
"""

from lookalike.client.sdk import Client, ProgressEvent, Project

__all__ = ["Client", "ProgressEvent", "Project"]
