# One image for every ENRGDAQ service (supervisor, beat, workers, flower): see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# README.md* : pyproject.toml names the README; the glob keeps the build working without one.
COPY pyproject.toml celeryconfig.py README.md* ./
COPY enrgdaq/ enrgdaq/
COPY configs/ configs/
RUN pip install --no-cache-dir ".[flower]"

# uid 1000: the owner of the shared tmpfs volume in docker-compose.yml (o=uid=1000).
RUN useradd --create-home --uid 1000 --user-group enrgdaq \
    && mkdir -p /app/out \
    && chown enrgdaq:enrgdaq /app /app/out
USER enrgdaq

CMD ["celery", "-A", "enrgdaq", "worker", "-Q", "default"]
