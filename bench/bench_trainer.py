"""Trainer throughput: the real loader (Delta window -> Arrow -> tensors) + training loop, vs the
same model and loop on tensors already in memory, in one run.

Run: .venv/bin/python bench/bench_trainer.py [--rows 1000000] [--epochs N] [--device cpu]
     [--rows-per-request 2] [--no-sequence]
The goal is a loader that costs under 10% of a training run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
from stage_memory import StageMemory

from ranker_assets.config import FeatureSpec, load_config
from ranker_assets.infra.lake import Lake
from ranker_assets.training.data import load_window, to_tensors
from ranker_assets.training.train import train_ranker

CONFIG = "bench"


def recent_actions(requests: np.ndarray, length: int, rng: np.random.Generator) -> pa.Table:
    """The sequence log of these requests: one row per request, full-length action lists."""
    ids = np.unique(requests)
    n = len(ids)
    offsets = pa.array(np.arange(0, n * length + 1, length, dtype=np.int32))
    start = datetime(2026, 10, 25, tzinfo=UTC)
    children = {
        "action_pin_id": pa.array(rng.integers(0, 200_000, n * length)),
        "action_type": pa.array(
            rng.choice(["closeup", "click", "repin", "long_click"], n * length)
        ),
        "action_ts": pa.array(
            np.sort(rng.integers(0, 6 * 86_400 * 10**6, n * length))
            + int(start.timestamp() * 10**6),
            pa.timestamp("us", tz="UTC"),
        ),
        "action_topic": pa.array(rng.integers(0, 32, n * length)),
        "action_content_type": pa.array(rng.choice(["image", "video", "product"], n * length)),
    }
    flat = {
        k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for k, v in children.items()
    }
    lists = {k: pa.ListArray.from_arrays(offsets, v) for k, v in flat.items()}
    return pa.table({"request_id": pa.array(ids), **lists})


def synthetic_day(
    rows: int,
    ds: str,
    seed: int,
    spec: FeatureSpec,
    rows_per_request: int,
    sequence_length: int,
) -> tuple[pa.Table, pa.Table | None]:
    """A sampled day shaped like the real one (float32 features, int64 ids, int8 labels) and,
    for a sequence ranker, its sequence log (each request's recent actions, once)."""
    dense, cats = spec.dense, spec.categorical
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0, 1, size=(rows, len(dense))).astype(np.float32)
    logit = x[:, 0] - 1.5 + 0.3 * np.log(x[:, 1])
    cols: dict[str, pa.Array] = {name: pa.array(x[:, i]) for i, name in enumerate(dense)}
    cols.update({name: pa.array(rng.integers(0, 50_000, rows)) for name in cats})
    for i, head in enumerate(("closeup", "click", "repin", "long_click", "hide")):
        p = 1 / (1 + np.exp(-(logit - i * 0.5)))
        cols[head] = pa.array((rng.random(rows) < p).astype(np.int8))
    cols["weight"] = pa.array(rng.choice([1.0, 10.0], rows).astype(np.float32))
    cols["policy"] = pa.array(np.where(rng.random(rows) < 0.02, "randomized", "production"))
    request_id = np.arange(rows, dtype=np.int64) // rows_per_request + seed * 10**8
    cols["request_id"] = pa.array(request_id)
    if spec.sequence is not None:
        noon = datetime.fromisoformat(ds).replace(hour=12, tzinfo=UTC)
        cols["request_ts"] = pa.array([noon] * rows, pa.timestamp("us", tz="UTC"))
        cols["content_type"] = pa.array(rng.choice(["image", "video", "product"], rows))
    cols["impressed"] = pa.array(np.ones(rows, dtype=bool))
    cols["config"] = pa.array([CONFIG] * rows)
    cols["ds"] = pa.array([ds] * rows)
    if spec.sequence is None:
        return pa.table(cols), None
    sequences = recent_actions(request_id, sequence_length, rng)
    return pa.table(cols), sequences.append_column("ds", pa.array([ds] * sequences.num_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the 7-day window")
    parser.add_argument(
        "--epochs", type=int, help="default: model.epochs, as the asset trains (it loads once)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, help="override model.batch_size")
    # Sampled rows per request: about 2 in the simulated world's sampled datasets (a request's
    # sequence is encoded once per batch however many of its rows the batch has).
    parser.add_argument("--rows-per-request", type=int, default=2)
    parser.add_argument(
        "--no-sequence", action="store_true", help="train without the recent actions"
    )
    args = parser.parse_args()
    cfg = load_config()
    # Every epoch runs (no early stopping): examples/s counts rows x epochs.
    epochs = args.epochs or cfg.model.epochs
    update = {"epochs": epochs, "device": args.device, "early_stopping_patience": None}
    if args.batch_size:
        update["batch_size"] = args.batch_size
    model = cfg.model.model_copy(update=update)
    spec, heads = cfg.features, model.heads
    if args.no_sequence:
        spec = spec.model_copy(update={"sequence": None})
    length = model.sequence.length
    days = [str(date(2026, 11, 1) + timedelta(days=i)) for i in range(model.window_days)]
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(tmp)
        for i, ds in enumerate(days):
            day, sequences = synthetic_day(  # the log holds all its actions; the model reads
                args.rows // len(days),  # the newest `length`
                ds,
                i,
                spec,
                args.rows_per_request,
                cfg.logging.sequence_length,
            )
            lake.replace_partition("sampled_dataset", day, {"config": CONFIG, "ds": ds})
            if sequences is not None:
                lake.replace_partition("sequence_log", sequences, {"ds": ds})
        # Warm up (allocator, kernels) on a small slice so both timings are steady state.
        warm = to_tensors(
            load_window(lake, CONFIG, days[:1], spec, heads, length).slice(0, 20_000),
            spec,
            heads,
            model.hash_buckets,
            sequence_length=length,
        )
        train_ranker(warm, spec, model)

        # Alternate the two paths and keep each one's best of two, so neither gets the warm caches.
        load_s, loader_runs, memory_runs = [], [], []
        for _ in range(2):
            memory = StageMemory()  # the second round's stages are reported
            t0 = time.perf_counter()
            with memory.stage("load: Delta -> Arrow -> tensors"):
                tensors = to_tensors(
                    load_window(lake, CONFIG, days, spec, heads, length),
                    spec,
                    heads,
                    model.hash_buckets,
                    sequence_length=length,
                )
            load_s.append(time.perf_counter() - t0)
            with memory.stage("train and calibrate"):
                train_ranker(tensors, spec, model)
            loader_runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            outcome = train_ranker(tensors, spec, model)  # same model and loop, tensors in memory
            memory_runs.append(time.perf_counter() - t0)
    n = len(tensors) * epochs
    loader_run, in_memory, load = min(loader_runs), min(memory_runs), min(load_s)
    print(
        f"{len(tensors):,} rows x {epochs} epoch(s), {len(days)} days, device {args.device}, "
        f"{outcome.rows['per_step']} rows per step, "
        + (
            f"sequence of {length} of {cfg.logging.sequence_length} logged actions, "
            f"{args.rows_per_request} rows per request\n"
            if spec.sequence
            else "no sequence\n"
        )
    )
    print(f"{'path':<34}{'seconds':>9}{'examples/s':>13}")
    print(f"{'Delta -> Arrow -> tensors (load)':<34}{load:>9.2f}{len(tensors) / load:>13,.0f}")
    print(f"{'loader + training':<34}{loader_run:>9.2f}{n / loader_run:>13,.0f}")
    print(f"{'training on in-memory tensors':<34}{in_memory:>9.2f}{n / in_memory:>13,.0f}")
    print(
        f"\nloader + training / in-memory examples/s: {in_memory / loader_run:.3f}"
        f" (the loader costs {1 - in_memory / loader_run:.1%} of the run)"
    )
    aucs = {k[4:]: round(v, 3) for k, v in outcome.holdout.items() if k.startswith("auc_")}
    print(f"holdout AUC (a learning check): {aucs}")
    print(f"\n{memory.table()}")


if __name__ == "__main__":
    main()
