# syntax=docker/dockerfile:1
# The coordinator: gRPC API + node registry on 7700, Prometheus /metrics on 9100.
# Build from the repository root:  docker build -f deploy/docker/coordinator.Dockerfile -t lookalike-coordinator .
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
# A regular (not editable) install, so the sources can go once it is done.
RUN pip install . && rm -rf /src

COPY deploy/docker/healthcheck.py /usr/local/lib/lookalike/healthcheck.py
RUN useradd --create-home --uid 10001 lookalike
USER lookalike
WORKDIR /home/lookalike

EXPOSE 7700 9100
# Ray needs a while to start inside the coordinator: the start period covers it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "/usr/local/lib/lookalike/healthcheck.py", "127.0.0.1:7700", "lookalike.v1.Coordinator"]

ENTRYPOINT ["lookalike"]
CMD ["coordinator", "--listen", "0.0.0.0:7700", "--metrics-port", "9100", "--home", "/home/lookalike/.lookalike"]
