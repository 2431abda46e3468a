# syntax=docker/dockerfile:1.7
# roistream edge (GPU): capture -> detect -> encode on TensorRT / onnxruntime-gpu -> stream to the cloud.
#   docker build -f docker/edge.Dockerfile -t roistream-edge:0.1.0 .        (context: the repository root)
# Base: NVIDIA's TensorRT image (CUDA 13, the CUDA of onnxruntime-gpu 1.31 and tensorrt 11.4 in the
# `gpu` extra). Jetson needs an L4T/JetPack base instead: set TRT_IMAGE (see docs/export.md).
ARG TRT_IMAGE=nvcr.io/nvidia/tensorrt:25.10-py3
FROM ${TRT_IMAGE}

ARG ROISTREAM_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    ROISTREAM_CACHE=/var/lib/roistream/cache \
    ROISTREAM_SHARED=/shared \
    ROISTREAM_MODELS=/var/lib/roistream/models \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/var/lib/roistream/cache/ultralytics \
    MPLCONFIGDIR=/var/lib/roistream/cache/matplotlib

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv libgl1 libglib2.0-0 \
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

# a plain install: the codec weights are package data (codec/assets, found by codec.paths)
# the gpu extra brings onnxruntime-gpu next to the CPU onnxruntime of the base dependencies; both
# own the `onnxruntime` module, so the CPU one is removed and the GPU one reinstalled over it.
RUN python3 -m venv /opt/venv \
 && pip install ".[gpu]" \
 && pip uninstall -y onnxruntime \
 && pip install --no-deps --force-reinstall "onnxruntime-gpu==1.31.1" \
 && python -c "import onnxruntime as o, tensorrt as t; print(o.__version__, o.get_available_providers(), t.__version__)"

RUN useradd --uid ${ROISTREAM_UID} --create-home --shell /usr/sbin/nologin roistream \
 && mkdir -p /var/lib/roistream/cache /var/lib/roistream/models \
 && chown -R roistream:roistream /var/lib/roistream
USER roistream

# the ONNX graphs need no GPU: export them into the image, to $ROISTREAM_MODELS, where every runtime and
# `roistream export` look by default (engines are GPU-specific: built on the device with
# `roistream export tensorrt`, or by onnxruntime's TensorRT provider)
RUN roistream export onnx --no-verify

EXPOSE 9101
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9101/metrics', timeout=4)"

ENTRYPOINT ["roistream"]
CMD ["edge", "run", "--source", "/shared/data/video/vtest.avi", "--stream", "edge", "--backend", "onnxruntime", "--metrics-port", "9101", "--no-status"]
