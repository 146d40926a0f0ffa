# The demo service of docker-compose.yml: an application that calls the fake provider
# through the real OpenAI, Anthropic and google-genai SDKs, recorded by rawtap.
#   docker build -f deploy/demo.Dockerfile -t rawtap-demo .      (from the repository root)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY shared/ shared/
COPY producer/ producer/
RUN pip install ./shared "./producer[openai,anthropic,google-genai]" \
        opentelemetry-sdk opentelemetry-exporter-otlp-proto-http \
    && useradd --system --uid 10001 --no-create-home demo
COPY deploy/demo/service.py /app/service.py

USER 10001
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "/app/service.py"]
