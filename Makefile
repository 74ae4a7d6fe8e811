# One-command set-up: every target creates the venv and installs what it needs.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RANKER_HOME ?= $(CURDIR)/.ranker
export DAGSTER_HOME ?= $(RANKER_HOME)/dagster
export SPARK_LOCAL_IP ?= 127.0.0.1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DEMO_START ?= 2026-11-01
DEMO_DAYS ?= 10
DEMO_REQUESTS ?= 4000

.PHONY: demo test lint ui mlflow-ui java clean bench bench-quick

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "$(PY) not found: install Python 3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a looser spec would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

java:
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "Java 17+ is required by Spark (found: $${v:-none}). Install it with:"; \
	  echo "  sudo apt-get install -y openjdk-17-jre-headless   (Debian/Ubuntu)"; \
	  echo "  brew install openjdk@17                           (macOS)"; exit 1; fi

$(DAGSTER_HOME)/dagster.yaml: configs/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp configs/dagster.yaml $@

demo: $(STAMP) java $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m ranker_assets.entrypoints.demo --start $(DEMO_START) --days $(DEMO_DAYS) --requests $(DEMO_REQUESTS)

test: $(STAMP) java $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check ranker_assets ranker_assets_tests bench
	$(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/pytest

# Every benchmark and experiment; writes docs/results.md (about an hour on 2 cores).
bench: $(STAMP) java $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python bench/run_all.py

# The same, small: minutes; writes docs/results_quick.md.
bench-quick: $(STAMP) java $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python bench/run_all.py --quick

lint: $(STAMP)
	$(BIN)/ruff check ranker_assets ranker_assets_tests bench
	$(BIN)/ruff format --check ranker_assets ranker_assets_tests bench

ui: $(STAMP) java $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: $(STAMP)
	mkdir -p $(RANKER_HOME)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(RANKER_HOME)/mlflow.db \
	  --default-artifact-root $(RANKER_HOME)/mlartifacts --host 127.0.0.1 --port 5000

clean:
	rm -rf $(RANKER_HOME)
