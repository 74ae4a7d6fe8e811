"""The batch stages' section: the Joiner's maturity rules, the Spark session, where the sampling
configs live."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
)

from ranker_assets.config.base import REPO_ROOT, Strict


class JoinerConfig(Strict):
    """How labels are joined to logged features.

    A day is joined once the next day's events are ingested, or, when `labels_final_hours` is
    set, once that many hours have passed since the day ended (a finished log's last day never
    gets a next day): its labels then count as final, and the partition says so.
    """

    maturity_hours: float = Field(24.0, gt=0.0, le=48.0)
    orphan_error_share: float = Field(0.01, ge=0.0, le=1.0)
    labels_final_hours: float | None = Field(None, gt=0.0)
    # Label days with at most this many event rows are summarized per key and broadcast to the
    # feature log's tasks, so the wide feature rows are never shuffled; a summary row costs
    # about 100 bytes of driver and executor memory. Larger days shuffle both sides; 0: always.
    broadcast_events_rows: int = Field(5_000_000, ge=0)


class SparkConfig(Strict):
    """Spark session settings: local by default; point `master` at a cluster to scale out."""

    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)

    def session_config(self) -> dict[str, str]:
        """The full Spark conf: defaults for correctness and a quiet local run, then overrides."""
        return {
            "spark.master": self.master,
            "spark.app.name": "ranker_assets",
            "spark.driver.memory": "4g",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "4",
            # Scan splits of 32 MB: a day's few ~100 MB files become enough tasks to keep every
            # core busy to the end (3 splits on 2 cores leave one idle for a third of the scan).
            "spark.sql.files.maxPartitionBytes": "32m",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
            "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
            "spark.hadoop.parquet.enable.summary-metadata": "false",
            **self.conf,
        }


class SamplingSettings(Strict):
    """Where the sampling configs live, which one trains by default, and the health limit.

    A relative `configs_dir` is resolved against the ranker config file's folder on load.
    """

    configs_dir: str = "configs/sampling"
    default: str = "balanced"
    max_ratio_change: float = Field(3.0, gt=1.0)
    # Caps are applied without shuffling the rows when the groups that can pass a cap (rows /
    # cap: at most that many hold more than `cap` rows) number at most this: each such group's
    # threshold (~40 bytes) is sent to every task. Larger days rank rows by a window; 0: always.
    broadcast_cap_groups: int = Field(5_000_000, ge=0)

    @property
    def configs_path(self) -> Path:
        path = Path(self.configs_dir)
        return path if path.is_absolute() else REPO_ROOT / path
