# The Airflow image the docker-compose.yaml stack runs: the official apache/airflow image, extended with
# this bundle's requirements as "Extending the image" in the Airflow docker-stack docs describes.
# The tag must equal the `apache-airflow==` pin in requirements.txt (tests/test_compose.py checks it).
FROM apache/airflow:3.3.2

# mysqlclient (MySqlHook's default client) is built from source: it needs the MySQL/MariaDB client
# headers, pkg-config and a compiler. apt runs as root; switch back to the airflow user afterwards.
USER root
RUN apt-get update \
  && apt-get install -y --no-install-recommends \
         default-libmysqlclient-dev \
         pkg-config \
         build-essential \
  && apt-get autoremove -yqq --purge \
  && apt-get clean \
  && rm -rf /var/lib/apt/lists/*
USER airflow

# "apache-airflow==${AIRFLOW_VERSION}" (AIRFLOW_VERSION is set by the base image) keeps pip from
# upgrading or downgrading Airflow while it resolves our pinned providers and libraries.
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt
