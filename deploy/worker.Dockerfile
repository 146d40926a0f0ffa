# The rawtap worker (and the fake provider, which ships in rawtap-consumer).
#   docker build -f deploy/worker.Dockerfile -t rawtap-worker .      (from the repository root)
#   docker run --rm -e RAWTAP_REDIS_URL=redis://redis:6379/0 -e RAWTAP_SINK_URL=postgresql://… rawtap-worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY shared/ shared/
COPY producer/ producer/
COPY consumer/ consumer/
RUN pip install ./shared ./producer "./consumer[compression]" \
    && useradd --system --uid 10001 --no-create-home rawtap \
    && mkdir /data && chown 10001 /data

USER 10001
WORKDIR /data
# The worker drains the batch in hand and flushes telemetry on SIGTERM, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rawtap"]
CMD ["worker"]
