# One image for every Taxonomist process of docker-compose.yml: the API, the UI, the Dask
# scheduler and workers, and the MLflow tracking server (the same commands as
# deploy/local-cluster/up.sh runs). CPU only: torch is the pinned CPU wheel.
#   docker build -t taxonomist .
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
# The compiled parts (Cython) are built here, once, into a wheel.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# libgomp: LightGBM's and torch's OpenMP; curl: the healthchecks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*
# torch pinned and from the CPU index first: a looser requirement pulls a multi-GB CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[torch]" && rm -rf /wheels
RUN useradd --create-home --uid 10001 taxonomist && mkdir /data && chown taxonomist /data
USER taxonomist
ENV TAXONOMIST_HOME=/data PYTHONUNBUFFERED=1 MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
VOLUME /data
EXPOSE 8000 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["taxonomist", "serve", "--host", "0.0.0.0", "--port", "8000"]
