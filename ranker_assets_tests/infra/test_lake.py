from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder
from pyspark.sql import functions as F

from ranker_assets.infra.lake import Lake


def _day(ds: str, n: int, offset: int = 0) -> pa.Table:
    return pa.table({"x": pa.array(range(offset, offset + n), pa.int64()), "ds": [ds] * n})


def test_replace_partition_is_one_commit_and_leaves_other_days(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    assert lake.replace_partition("t", _day("2026-11-01", 3), {"ds": "2026-11-01"}) == 0
    assert lake.replace_partition("t", _day("2026-11-02", 4), {"ds": "2026-11-02"}) == 1
    # Re-running a day replaces it: no duplicates, other day untouched, exactly one new version.
    assert lake.replace_partition("t", _day("2026-11-01", 2, 100), {"ds": "2026-11-01"}) == 2
    rows = lake.read("t").to_pydict()
    assert sorted(zip(rows["ds"], rows["x"], strict=True)) == [
        ("2026-11-01", 100),
        ("2026-11-01", 101),
        ("2026-11-02", 0),
        ("2026-11-02", 1),
        ("2026-11-02", 2),
        ("2026-11-02", 3),
    ]
    assert lake.read("t", ["2026-11-02"]).num_rows == 4
    with pytest.raises(ValueError, match="rows outside ds=2026-11-03"):
        lake.replace_partition("t", _day("2026-11-01", 1), {"ds": "2026-11-03"})
    assert lake.partition_bytes("t", ds="2026-11-02") > 0
    # Row counts from the log's statistics: the replaced day counts its new rows only.
    assert lake.rows("t", ["2026-11-01"]) == 2
    assert lake.rows("t", ["2026-11-01", "2026-11-02"]) == 6
    assert lake.rows("t", ["2026-11-09"]) == 0


@pytest.mark.spark
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_spark_write_commits_through_delta_rs_and_a_second_reader_agrees(
    tmp_path, spark, as_uri: bool
) -> None:
    """Plain paths and URIs (as object stores use) go through the same Arrow filesystem code."""
    lake = Lake(tmp_path.as_uri() if as_uri else str(tmp_path))
    for ds, n in (("2026-11-01", 50), ("2026-11-02", 70)):
        df = spark.range(n).withColumn("ds", F.lit(ds)).withColumn("y", F.col("id") * 2)
        lake.spark_replace_day(df, "t", ds)
    version, rows = lake.spark_replace_day(
        spark.range(30).withColumn("ds", F.lit("2026-11-01")).withColumn("y", F.lit(1)),
        "t",
        "2026-11-01",
    )
    assert (version, rows) == (3, 30)  # create + two days + one replace
    # A second, independent Delta reader (DataFusion inside delta-rs) sees the same rows.
    result = (
        QueryBuilder()
        .register("t", DeltaTable(lake.uri("t")))
        .execute("SELECT ds, count(*) AS n, sum(y) AS s FROM t GROUP BY ds ORDER BY ds")
    )
    assert pa.table(result.read_all()).to_pydict() == {
        "ds": ["2026-11-01", "2026-11-02"],
        "n": [30, 70],
        "s": [30, 2 * sum(range(70))],
    }
    back = lake.spark_read(spark, "t", ["2026-11-02"])
    assert back.count() == 70 and dict(back.dtypes)["ds"] == "string"
    assert lake.read("t", ["2026-11-01"]).column("y").to_pylist() == [1] * 30
    assert lake.rows("t", ["2026-11-01", "2026-11-02"]) == 100  # Spark-written files count too


@pytest.mark.spark
def test_a_crash_mid_write_leaves_the_previous_version_readable(tmp_path, spark) -> None:
    lake = Lake(str(tmp_path))
    good = spark.range(100).withColumn("ds", F.lit("2026-11-01"))
    lake.spark_replace_day(good, "t", "2026-11-01")
    before = lake.table("t").version()
    failing = (
        spark.range(10_000)
        .withColumn("ds", F.lit("2026-11-01"))
        .withColumn(
            "id",
            F.when(F.col("id") > 5000, F.raise_error(F.lit("executor died"))).otherwise(
                F.col("id")
            ),
        )
    )
    with pytest.raises(Exception, match="executor died"):
        lake.spark_replace_day(failing.repartition(4), "t", "2026-11-01")
    assert lake.table("t").version() == before
    assert lake.read("t", ["2026-11-01"]).num_rows == 100
