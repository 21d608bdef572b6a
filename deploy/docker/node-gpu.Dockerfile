# syntax=docker/dockerfile:1
# A GPU render node: the project with its `gpu` extra (CuPy for the kernels), on the CUDA 12 runtime
# that cupy-cuda12x expects. gRPC on 7701, Prometheus /metrics on 9101.
# Build from the repository root:  docker build -f deploy/docker/node-gpu.Dockerfile -t lookalike-node-gpu .
# Run with a GPU: docker run --gpus all ... (compose: deploy.resources.reservations.devices).
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # `video` exposes NVENC/NVDEC to the container besides CUDA compute.
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY lookalike lookalike
COPY kernels kernels
COPY nodes nodes
COPY coordinator coordinator
COPY client client
COPY proto proto
RUN pip install ".[gpu]" && rm -rf /src

COPY deploy/docker/healthcheck.py /usr/local/lib/lookalike/healthcheck.py
RUN useradd --create-home --uid 10001 lookalike
USER lookalike
WORKDIR /home/lookalike

EXPOSE 7701 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "/usr/local/lib/lookalike/healthcheck.py", "127.0.0.1:7701", "lookalike.v1.Node"]

ENTRYPOINT ["lookalike"]
CMD ["node", "--coordinator", "coordinator:7700", "--listen", "0.0.0.0:7701", "--slots", "2", \
     "--capabilities", "cpu,gpu,nvenc", "--metrics-port", "9101"]
