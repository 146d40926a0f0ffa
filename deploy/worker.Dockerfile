# The rawtap worker: rawtap-consumer alone (no producer, no provider SDK, no fake provider;
# the workspace's other members are copied only because uv reads the whole workspace).
#   docker build -f deploy/worker.Dockerfile -t rawtap-worker:0.1.0 .      (from the repository root)
#   docker run --rm -e RAWTAP_REDIS_URL=redis://redis:6379/0 -e RAWTAP_SINK_URL=postgresql://… rawtap-worker:0.1.0
# Every dependency is the version uv.lock pins (deploy/install.sh); .dockerignore keeps
# local virtual environments, databases and caches out of the build context.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1

WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY shared/ shared/
COPY producer/ producer/
COPY consumer/ consumer/
COPY tools/ tools/
COPY deploy/install.sh deploy/install.sh
RUN pip install uv==0.13.9 \
    && deploy/install.sh /opt/rawtap rawtap-consumer compression \
    && pip uninstall -y uv \
    && rm -rf /src \
    && useradd --system --uid 10001 --no-create-home rawtap \
    && mkdir /data && chown 10001 /data
ENV PATH=/opt/rawtap/bin:$PATH

USER 10001
WORKDIR /data
# The worker drains the batch in hand and flushes telemetry on SIGTERM, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rawtap"]
CMD ["worker"]
