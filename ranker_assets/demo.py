"""`make demo`: the main job on simulated data, end to end, through Dagster.

Simulates days of closeup traffic into the landing zone, then materializes, day by day, the
logged-event assets, the Joiner, the Sampler and finally a ranker, in the persistent Dagster
instance (DAGSTER_HOME), so every run shows up in the UI (`make ui`). Prints what each stage did
and how the ranker compares with the heuristic policy and the oracle on randomized traffic.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta

import dagster as dg
import mlflow

from ranker_assets.config import RankerConfig, load_config, ranker_home
from ranker_assets.definitions import build_definitions
from ranker_assets.evaluation.replay import replay_aucs, replay_day
from ranker_assets.training.tracking import RegisteredRanker
from ranker_assets.world.simulator import DayReport, simulate_to_landing

REPLAY_REQUESTS = 4000
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


class Demo:
    """Materializes assets one partition per run, as the UI or a backfill would."""

    def __init__(self, cfg: RankerConfig, instance: dg.DagsterInstance) -> None:
        self.cfg = cfg
        self.instance = instance
        self.job = build_definitions(cfg).resolve_implicit_global_asset_job_def()

    def run(
        self, assets: list[str], key: str | dg.MultiPartitionKey | None = None
    ) -> dg.ExecuteInProcessResult:
        return self.job.execute_in_process(
            run_config=QUIET,
            instance=self.instance,
            partition_key=key,
            asset_selection=[dg.AssetKey(a) for a in assets],
        )

    def ingest(self, days: list[str], label_day: str) -> None:
        print("\n== 2. ingestion: landed logs -> Delta tables + quarantine ==")
        print(f"{'ds':<12}{'log':<13}{'rows in':>9}{'kept':>9}{'quarant.':>9}{'dups':>6}")
        for ds in [*days, label_day]:
            logs = ["feature_log", "event_log"] if ds in days else ["event_log"]
            result = self.run(logs, ds)
            for log in logs:
                m = _metadata(result, log)
                print(
                    f"{ds:<12}{log:<13}{m['rows_in']:>9,}{m['rows_kept']:>9,}"
                    f"{m['rows_quarantined']:>9,}{m['duplicates_dropped']:>6,}"
                )

    def join(self, days: list[str]) -> None:
        print("\n== 3. Joiner: features x mature labels -> training_examples (Spark) ==")
        print(
            f"{'ds':<12}{'joined':>9}" + "".join(f"{h:>11}" for h in ("closeup", "click", "repin"))
        )
        for ds in days:
            m = _metadata(self.run(["training_examples"], ds), "training_examples")
            counts = "".join(f"{m[f'positives_{h}']:>11,}" for h in ("closeup", "click", "repin"))
            print(f"{ds:<12}{m['rows_joined']:>9,}{counts}")

    def sample(self, days: list[str], config: str) -> None:
        print(f"\n== 4. Sampler: training_examples -> sampled_dataset (config {config!r}) ==")
        # Record each config's content hash first, so later edits show its datasets as stale.
        self.run(["sampling_config"])
        for ds in days:
            result = self.run(
                ["sampled_dataset"], dg.MultiPartitionKey({"ds": ds, "config": config})
            )
            m = _metadata(result, "sampled_dataset")
            (check,) = result.get_asset_check_evaluations()
            status = "healthy" if check.passed else f"UNHEALTHY: {check.metadata['problems'].value}"
            reused = " (reused by lineage)" if m["reused_by_lineage"] else ""
            print(f"\n-- {ds}: {status}{reused}\n{m['health']}")

    def train(self, ds: str, config: str) -> RegisteredRanker:
        print(f"\n== 5. Trainer: ranker_model for ({ds}, {config!r}) (PyTorch, MLflow) ==")
        result = self.run(["ranker_model"], dg.MultiPartitionKey({"ds": ds, "config": config}))
        ref: RegisteredRanker = result.output_for_node("ranker_model")
        window = _metadata(result, "ranker_model")["window"]
        print(f"registered {ref.uri} and models:/{ref.raw_name}/{ref.raw_version}; window {window}")
        return ref


def print_replay_evaluation(cfg: RankerConfig, ref: RegisteredRanker, seed: int, day: date) -> None:
    """Per-head AUC of the registered ranker on a later day served in random order."""
    mlflow.set_tracking_uri(cfg.mlflow.resolved_uri())
    frame = replay_day(cfg, seed, day, REPLAY_REQUESTS)
    features = frame[list(cfg.features.inputs)]
    scores = mlflow.pyfunc.load_model(ref.uri).predict(features)
    table = replay_aucs(frame, scores, tuple(scores.columns.str.removeprefix("p_")))
    print(f"\nper-head AUC on {day}, {REPLAY_REQUESTS:,} requests in random order (unbiased):")
    print(table.round(4).to_string())


def _print_simulation(reports: list[DayReport]) -> None:
    print("\n== 1. simulated closeup traffic (hybrid logging) ==")
    header = ("ds", "served", "impressed", "features", "events", "KB landed", "s")
    print(f"{header[0]:<12}" + "".join(f"{h:>11}" for h in header[1:]))
    for r in reports:
        kb = sum(w.bytes for k, w in r.written.items() if k != "ground_truth") / 1024
        print(
            f"{r.ds!s:<12}{r.served:>11,}{r.impressed:>11,}{r.written['feature_log'].rows:>11,}"
            f"{r.written['event_log'].rows:>11,}{kb:>11,.0f}{r.seconds:>11.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cfg = load_config()
    home = ranker_home()
    # The demo prints its own summary; MLflow's per-call notices would bury it.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start = date.fromisoformat(args.start)
    print(f"RANKER_HOME={home}")
    _print_simulation(
        simulate_to_landing(
            cfg.world, cfg.logging, home / "landing", start, args.days, args.requests, args.seed
        )
    )
    days = [str(start + timedelta(days=i)) for i in range(args.days)]
    with dg.DagsterInstance.get() as instance:
        demo = Demo(cfg, instance)
        demo.ingest(days, label_day=str(start + timedelta(days=args.days)))
        demo.join(days)
        demo.sample(days, cfg.sampling.default)
        ref = demo.train(days[-1], cfg.sampling.default)
    print_replay_evaluation(cfg, ref, args.seed, start + timedelta(days=args.days))
    print(f"\nDelta tables under {home / 'lake'}; MLflow at {cfg.mlflow.resolved_uri()}.")
    print("`make ui` shows the asset graph and every run above.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
