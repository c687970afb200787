# syntax=docker/dockerfile:1
# streamscore production image: a scoring worker by default.
#   docker build -t streamscore .
#   docker run -v $PWD/config.toml:/etc/streamscore/config.toml -v models:/var/lib/streamscore \
#     -e STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS=kafka:9092 streamscore

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Dependencies first (same lock as make and CI), so code changes reuse this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY streamscore ./streamscore
COPY broker ./broker
COPY model_store ./model_store
COPY training ./training
COPY worker ./worker
COPY producer ./producer
COPY app ./app
RUN pip install --no-cache-dir --no-deps .

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 streamscore \
    && useradd --system --uid 10001 --gid streamscore --home-dir /var/lib/streamscore \
       --create-home streamscore
COPY --from=build /opt/venv /opt/venv
COPY config.toml /etc/streamscore/config.toml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STREAMSCORE_CONFIG=/etc/streamscore/config.toml \
    STREAMSCORE__MODEL_STORE__ROOT=/var/lib/streamscore/models \
    STREAMSCORE__WORKER__LOG_DIR=/var/lib/streamscore/log \
    STREAMSCORE__TRAINER__JOBS_DIR=/var/lib/streamscore/jobs \
    STREAMSCORE__HTTP__HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/streamscore
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["streamscore"]
CMD ["worker", "--processes", "1"]
