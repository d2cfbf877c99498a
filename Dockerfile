# frontline classification service (FastAPI + uvicorn), CPU only.
# Build:  docker build -t frontline .            (add --build-arg TORCH_INDEX_URL=<a CPU wheel index> to avoid
#                                                  pulling CUDA packages for torch on a machine without a local CPU wheel)
# Run:    docker run -p 8000:8000 -v "$PWD/models:/app/models" -e FRONTLINE_API_KEYS=change-me frontline
# The model comes from the MLflow store mounted at /app/models (models:/frontline@champion by default),
# or from MLFLOW_TRACKING_URI / FRONTLINE_MODEL_URI.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    MLFLOW_DISABLE_TELEMETRY=true TOKENIZERS_PARALLELISM=false

WORKDIR /app
# torch first, pinned, so nothing later asks for a different build
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install torch==2.13.0 --index-url "$TORCH_INDEX_URL"; \
    else pip install torch==2.13.0; fi
COPY pyproject.toml README.md ./
COPY training ./training
COPY serving ./serving
RUN pip install .
COPY models/README.md ./models/README.md

RUN useradd --create-home frontline && chown -R frontline /app
USER frontline
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready').status != 200)"
CMD ["frontline", "serve", "--host", "0.0.0.0", "--port", "8000"]
