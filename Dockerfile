# webchat in a container: the page on 8000, the TCP server on 9000.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webchat ./webchat
COPY templates ./templates
COPY static ./static
RUN pip install . && rm -rf /src

# The transcript outlives the container in a volume: one SQLite file per endpoint under /data/webchat.
RUN useradd --create-home --uid 10001 webchat && mkdir /data && chown webchat /data
ENV XDG_DATA_HOME=/data
VOLUME /data
USER webchat
WORKDIR /home/webchat

EXPOSE 8000 9000
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["webchat", "server", "--http-host", "0.0.0.0", "--tcp-host", "0.0.0.0"]
