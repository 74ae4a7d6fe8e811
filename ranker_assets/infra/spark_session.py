"""One way to start Spark for this project, shared by the Dagster resource, tests and benches."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from ranker_assets.config import SparkConfig

SPARK_CONF_DIR = Path(__file__).parent / "spark_conf"


def prepare_environment() -> None:
    """Bind local Spark to loopback, quiet its logs and run Python tasks (ingestion's) with this
    interpreter, unless the user configured otherwise (a cluster's executors may need theirs)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("SPARK_CONF_DIR", str(SPARK_CONF_DIR))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def get_spark(cfg: SparkConfig) -> SparkSession:
    """Start (or reuse: Spark allows one session per process) a session with the ranker's conf."""
    prepare_environment()
    builder = SparkSession.builder
    for key, value in cfg.session_config().items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
