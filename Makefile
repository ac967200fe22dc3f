SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml producer/pyproject.toml | md5sum | cut -c1-12)

help:
	@echo "make demo   - set up everything, load demo content, run memora_cdn_full_rebuild, show what it published"
	@echo "make test   - ruff's Airflow rules (make lint), then the whole test suite against local MariaDB, Redis and S3"
	@echo "make test-faults - only the fault, bad-input and security tests (about 3 min)"
	@echo "make bench  - benchmarks P1-P6 and growth into bench/RESULTS.md (about 80 min; python -m bench.run --quick for a 20-minute smoke check)"
	@echo "make airflow - airflow standalone on http://127.0.0.1:8080 wired to the local stack (user ops)"
	@echo "make airflow-celery - CeleryExecutor cluster (PostgreSQL, Redis broker, 2 workers) on http://127.0.0.1:8090, in the background"
	@echo "make airflow-celery-stop - stop it"

$(STAMP):
	bash scripts/services.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e . -e ./producer
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

services: $(STAMP)
	bash scripts/services.sh
	source scripts/airflow_env.sh && $(PY) scripts/local_s3.py start

demo: services
	source scripts/airflow_env.sh && $(PY) scripts/demo.py

airflow: services
	bash scripts/airflow_standalone.sh

# the same cluster as docker-compose.yaml, as separate processes on this machine (scripts/airflow_celery.sh)
airflow-celery: services
	source scripts/airflow_env.sh && MEMORA_VENV=$(abspath $(VENV)) bash scripts/demo_stack.sh
	MEMORA_VENV=$(abspath $(VENV)) bash scripts/airflow_celery.sh start

airflow-celery-stop:
	MEMORA_VENV=$(abspath $(VENV)) bash scripts/airflow_celery.sh stop

lint: $(STAMP)
	$(VENV)/bin/ruff check --preview --select AIR dags include plugins docs/examples

test: $(STAMP) lint
	MEMORA_WITH_BROWSER=1 bash scripts/services.sh
	$(PY) -m pytest

test-faults: $(STAMP)
	bash scripts/services.sh
	$(PY) -m pytest tests/test_faults.py tests/test_bad_input.py tests/test_security.py -q

bench: services
	PYTHONPATH=include $(PY) -m bench.run

.PHONY: help venv services demo lint test test-faults bench airflow airflow-celery airflow-celery-stop
