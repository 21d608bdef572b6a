# syntax=docker/dockerfile:1
# A CPU render node: gRPC on 7701, Prometheus /metrics on 9101. Kernels run on NumPy.
# Build from the repository root:  docker build -f deploy/docker/node-cpu.Dockerfile -t lookalike-node-cpu .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY lookalike lookalike
COPY kernels kernels
COPY nodes nodes
COPY coordinator coordinator
COPY client client
COPY proto proto
RUN pip install . && rm -rf /src

COPY deploy/docker/healthcheck.py /usr/local/lib/lookalike/healthcheck.py
RUN useradd --create-home --uid 10001 lookalike
USER lookalike
WORKDIR /home/lookalike

EXPOSE 7701 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/usr/local/lib/lookalike/healthcheck.py", "127.0.0.1:7701", "lookalike.v1.Node"]

# --advertise-host must be a name the coordinator can reach: compose and Kubernetes set it per node.
ENTRYPOINT ["lookalike"]
CMD ["node", "--coordinator", "coordinator:7700", "--listen", "0.0.0.0:7701", "--slots", "2", \
     "--capabilities", "cpu", "--metrics-port", "9101"]
