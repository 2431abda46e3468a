# syntax=docker/dockerfile:1.7
# roistream cloud (CPU): gRPC ingest, storage, selective decoding and queries.
#   docker build -f docker/cloud.Dockerfile -t roistream-cloud:0.1.0 .      (context: the repository root)
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG ROISTREAM_UID=10001
# set to a CPU-only torch wheel index to keep CUDA libraries out of this image
ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PATH=/opt/venv/bin:$PATH \
    ROISTREAM_CACHE=/var/lib/roistream/cache \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/var/lib/roistream/cache/ultralytics \
    MPLCONFIGDIR=/var/lib/roistream/cache/matplotlib

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/roistream
COPY pyproject.toml README.md LICENSE ./
COPY roistream/ roistream/
COPY codec/ codec/
COPY edge/ edge/
COPY cloud/ cloud/
COPY proto/ proto/
COPY export/ export/
COPY bench/ bench/

# a plain install: the codec weights are package data (codec/assets, found by codec.paths);
# EXTRAS="[scale]" adds the distributed backends' clients (docker/compose.scale.yaml)
ARG EXTRAS=""
RUN python -m venv /opt/venv && pip install ".${EXTRAS}" && roistream --help > /dev/null

RUN useradd --uid ${ROISTREAM_UID} --create-home --shell /usr/sbin/nologin roistream \
 && mkdir -p /var/lib/roistream/cache /var/lib/roistream/data \
 && chown -R roistream:roistream /var/lib/roistream
USER roistream
VOLUME ["/var/lib/roistream/data"]

EXPOSE 50051 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import sys, grpc; from grpc_health.v1 import health_pb2 as p, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(p.HealthCheckRequest(service=''), timeout=4); sys.exit(0 if r.status == p.HealthCheckResponse.SERVING else 1)"

ENTRYPOINT ["roistream"]
CMD ["cloud", "serve", "--data", "/var/lib/roistream/data", "--host", "0.0.0.0", "--port", "50051", \
     "--metrics-host", "0.0.0.0", "--metrics-port", "9100", "--insecure"]
