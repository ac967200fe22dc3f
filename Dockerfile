# The production image: the official apache/airflow image with this project's pinned requirements and the memora-cdn
# package baked in. The DAG files are NOT in the image: they come from the DAG bundle (a mounted dags/ folder or a
# GitDagBundle, docs/deployment.md). The tag must equal the `apache-airflow==` pin in requirements.txt
# (tests/test_compose.py checks it).
#
#   docker build -t memora-cdn-airflow:3.3.2 .                 # the final stage: what every component runs
#   docker build --target dev -t memora-cdn-airflow:3.3.2-dev .  # + the development-only demo content generator
#
# Stage 1 (build) has the compilers and the MySQL client headers: it turns requirements.txt (pinned by
# constraints.txt) and the memora-cdn package into wheels. Stage 2 (runtime) installs only those wheels, with no
# index, on top of apache/airflow and adds just the MariaDB client runtime library; no compiler reaches it.

ARG AIRFLOW_IMAGE=apache/airflow:3.3.2

FROM ${AIRFLOW_IMAGE} AS build
USER root
RUN apt-get update \
  && apt-get install -y --no-install-recommends \
         build-essential \
         default-libmysqlclient-dev \
         pkg-config \
  && apt-get clean \
  && rm -rf /var/lib/apt/lists/*
USER airflow
WORKDIR /home/airflow/src
COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md ./
COPY --chown=airflow:0 include/memora_cdn ./include/memora_cdn
# "apache-airflow==${AIRFLOW_VERSION}" (set by the base image) keeps pip from moving Airflow; constraints.txt pins
# every transitive dependency. The wheels of what the base image already has are built too, so the runtime stage
# can install with --no-index.
RUN pip wheel --no-cache-dir --wheel-dir /home/airflow/wheels \
      -c constraints.txt "apache-airflow==${AIRFLOW_VERSION}" -r requirements.txt \
  && pip wheel --no-cache-dir --no-deps --wheel-dir /home/airflow/wheels .

FROM ${AIRFLOW_IMAGE} AS runtime
USER root
# only the runtime library mysqlclient links against (its -dev package and the compilers stay in the build stage)
RUN apt-get update \
  && apt-get install -y --no-install-recommends libmariadb3 \
  && apt-get clean \
  && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --from=build /home/airflow/wheels /tmp/wheels
COPY constraints.txt requirements.txt /tmp/pins/
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels -c /tmp/pins/constraints.txt \
      "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/pins/requirements.txt memora-cdn \
  && rm -rf /tmp/wheels /tmp/pins
# the operators' dashboard (an API-server plugin) is part of the deployment, like the package
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/

# Development only (docker-compose.yaml's memora-demo-content): the demo content generator and its SQL, which the
# package and the runtime stage leave out.
FROM runtime AS dev
COPY --chown=airflow:0 include/memora_cdn_demo /opt/airflow/dev/memora_cdn_demo
ENV PYTHONPATH=/opt/airflow/dev

# the default target: what a deployment runs
FROM runtime AS production
