# frontline classification service: FastAPI + uvicorn on onnxruntime, CPU only, no torch.
# Build:  docker build -t frontline .
# Run:    docker run -p 8000:8000 -e FRONTLINE_API_KEYS=change-me frontline
#         It serves the shipped release (registered in /app/models on first start). To keep the store, or serve
#         your own champion, mount a store there (-v "$PWD/models:/app/models", writable by uid 10001) or set
#         MLFLOW_TRACKING_URI (a tracking server) or FRONTLINE_MODEL_URI (any MLflow URI or bundle directory).
# tests/deploy/test_image.py reproduces these steps without a container daemon: keep the two in step.

# Build stage: a wheel from the sources and the shipped release (installed as the package's data files).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY training ./training
COPY serving ./serving
COPY models/release ./models/release
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the wheel with its serving dependencies only (no torch, training or test packages).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true TOKENIZERS_PARALLELISM=false \
    FRONTLINE_MODELS_DIR=/app/models
COPY --from=build /wheels /wheels
RUN pip install /wheels/frontline-*.whl && rm -rf /wheels \
    && useradd --uid 10001 --create-home --home-dir /app frontline \
    && mkdir -p /app/models && chown -R frontline /app
WORKDIR /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status != 200)"
CMD ["frontline", "serve", "--host", "0.0.0.0", "--port", "8000"]
