# The demo service of docker-compose.yml: an application that calls the fake provider
# through the real OpenAI, Anthropic and google-genai SDKs, recorded by rawtap.
#   docker build -f deploy/demo.Dockerfile -t rawtap-demo .      (from the repository root)
# rawtap-tools' `demo` extra brings the producer, the three SDKs and (through the
# consumer) the OpenTelemetry SDK with its OTLP exporter, all at the versions of uv.lock.
# The fake provider of docker-compose.yml runs from this image too.
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
    && deploy/install.sh /opt/rawtap rawtap-tools demo \
    && pip uninstall -y uv \
    && rm -rf /src \
    && useradd --system --uid 10001 --no-create-home demo
ENV PATH=/opt/rawtap/bin:$PATH
WORKDIR /app
COPY deploy/demo/service.py /app/service.py

USER 10001
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "/app/service.py"]
