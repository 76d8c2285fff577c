# VisitGate server image.
#   docker build -t visitgate .
#   docker run -p 8080:8080 -v visitgate-data:/data visitgate
# Configuration comes from flags or VISITGATE_* / DATABASE_URL / REDIS_URL environment variables
# (see server/settings.py).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pyproject.toml names README.md as the package readme, so it must be present for the build.
COPY pyproject.toml README.md ./
COPY sessions ./sessions
COPY server ./server
COPY recognition ./recognition
COPY recordings ./recordings
COPY client_web ./client_web
RUN pip install . \
    && rm -rf /app/build /app/*.egg-info

RUN groupadd --system visitgate \
    && useradd --system --gid visitgate --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin visitgate \
    && mkdir -p /data \
    && chown visitgate:visitgate /data

ENV VISITGATE_DATA_DIR=/data \
    VISITGATE_HOST=0.0.0.0

VOLUME ["/data"]
USER visitgate
WORKDIR /data
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

CMD ["visitgate", "serve"]
