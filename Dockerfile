# One image for every service (api, migrate, ray-head + dispatcher, ray-worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 \
    NAS_DATA_DIR=/data

WORKDIR /app

# torch first, from the CPU wheel index and pinned: the project install below then finds it
# satisfied and never pulls a CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# Dependencies before sources, so editing code does not re-download them.
COPY pyproject.toml README.m[d] ./
COPY nas_service/__init__.py nas_service/__init__.py
RUN mkdir -p search_spaces workers migrations \
    && touch search_spaces/__init__.py workers/__init__.py migrations/__init__.py \
    && pip install . && pip uninstall -y nas-service

COPY nas_service nas_service
COPY search_spaces search_spaces
COPY workers workers
COPY migrations migrations
RUN pip install --no-deps . \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
    && useradd --create-home --uid 1000 nas && mkdir -p /data && chown nas /data

USER nas
VOLUME ["/data"]
EXPOSE 8000
CMD ["python", "-m", "nas_service.api", "--host", "0.0.0.0", "--port", "8000"]
