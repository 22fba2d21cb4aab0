# The riskctl application image: the CLI, the dataflow workers and the replay producer.
# Installed the way the README installs a checkout (an editable install into a venv, at the
# versions requirements.lock pins), so the migrations in clickhouse/ and the dashboards in
# grafana/ are read from the source tree, as the packages flows.sql and flows.grafana.
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    RISKCTL_HOME=/data

# libgomp: OpenMP runtime that scikit-learn's and onnxruntime's wheels load.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 riskctl

WORKDIR /app
# Dependencies first, at the versions requirements.lock pins, from the project metadata alone,
# so code edits do not reinstall them.
COPY pyproject.toml README.md requirements.lock ./
RUN python -m venv /opt/venv \
    && pip install --upgrade pip \
    && python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" >/tmp/dependencies.txt \
    && pip install -r /tmp/dependencies.txt -c requirements.lock \
    && rm /tmp/dependencies.txt

COPY flows ./flows
COPY training ./training
COPY cli ./cli
COPY clickhouse ./clickhouse
COPY grafana ./grafana
RUN pip install -e . --no-deps -c requirements.lock \
    && riskctl --help >/dev/null

# Named volumes mounted here start with this ownership, so the unprivileged user can write.
RUN mkdir -p /data /recovery && chown riskctl:riskctl /data /recovery
USER riskctl
VOLUME ["/data"]
# Bytewax cluster traffic between worker processes.
EXPOSE 2101

CMD ["riskctl", "--help"]
