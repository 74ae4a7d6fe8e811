"""`make demo`: the closed loop on simulated data, day by day, through Dagster.

Each simulated day is served by the registry's champion (the heuristic until one is deployed,
with a holdout share still served by the previous one), landed, and pushed through the graph:
ingestion, the Joiner (once the next day's events exist), the Sampler, the trainer, the
validation report of the previous ranker on the day it never saw, and the deploy gate. Every
run goes to the persistent Dagster instance (DAGSTER_HOME), so `make ui` shows them all. Ends
with a table per day and the champion against the heuristic and the oracle on randomized
replay.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg
import mlflow
from mlflow.tracking import MlflowClient

from ranker_assets.closed_loop import serving_policy
from ranker_assets.config import RankerConfig, load_config, ranker_home
from ranker_assets.definitions import build_definitions
from ranker_assets.deployment import alias_pair
from ranker_assets.evaluation.replay import replay_aucs, replay_day
from ranker_assets.world.simulator import simulate_to_landing

REPLAY_REQUESTS = 4000
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DayRow:
    """What happened to one day's data, for the final table."""

    ds: str
    served_by: str = ""
    logged: int = 0
    sampled: int | None = None
    version: str = "-"
    aucs: str = "-"
    gate: str = "-"
    champion: str = "-"
    engagement: dict[str, dict[str, float]] = field(default_factory=dict)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    mats = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mats[0].metadata.items()} if mats else {}


class Demo:
    """Materializes assets one partition per run, as the UI or a backfill would."""

    def __init__(self, cfg: RankerConfig, instance: dg.DagsterInstance) -> None:
        self.cfg = cfg
        self.instance = instance
        self.job = build_definitions(cfg).resolve_implicit_global_asset_job_def()
        self.config = cfg.sampling.default

    def run(self, assets: list[str], key: str | dg.MultiPartitionKey) -> dg.ExecuteInProcessResult:
        return self.job.execute_in_process(
            run_config=QUIET,
            instance=self.instance,
            partition_key=key,
            asset_selection=[dg.AssetKey(a) for a in assets],
            raise_on_error=False,
        )

    def key(self, ds: str) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({"ds": ds, "config": self.config})

    def ingest(self, row: DayRow) -> None:
        result = self.run(["feature_log", "event_log"], row.ds)
        m = _metadata(result, "feature_log")
        row.logged = int(m.get("rows_kept", 0))
        print(f"  ingested {row.ds}: {row.logged:,} feature rows kept", flush=True)

    def prepare(self, row: DayRow) -> None:
        """Join a day whose next day's events are in, sample it, train the ranker ending it."""
        if not self.run(["training_examples"], row.ds).success:
            raise RuntimeError(f"the Joiner failed for {row.ds}")
        sampled = self.run(["sampled_dataset"], self.key(row.ds))
        row.sampled = int(_metadata(sampled, "sampled_dataset").get("rows_out", 0))
        trained = self.run(["ranker_model"], self.key(row.ds))
        m = _metadata(trained, "ranker_model")
        row.version = str(m.get("version", "blocked"))
        print(
            f"  joined and sampled {row.ds} ({row.sampled:,} rows); ranker v{row.version}",
            flush=True,
        )

    def validate_and_deploy(self, row: DayRow, eval_day: str) -> None:
        """The ranker ending `row.ds` against the champion on `eval_day`, then the gate."""
        report = _metadata(self.run(["validation_report"], self.key(eval_day)), "validation_report")
        row.aucs = " ".join(
            f"{report.get(f'auc_{h}', float('nan')):.4f}" for h in self.cfg.model.heads
        )
        decision = _metadata(self.run(["deployed_ranker"], eval_day), "deployed_ranker")
        row.gate = "PASS" if report.get("passed") else "FAIL"
        row.champion = f"{decision.get('action', '?')} -> v{decision.get('champion_version')}"
        print(f"  {report.get('verdict', 'no report')}", flush=True)
        print(f"  deployed_ranker {eval_day}: {row.champion}", flush=True)


def _engagement(row: DayRow) -> str:
    if not row.engagement:
        return "-"
    new, old = row.engagement["champion"], row.engagement["previous"]
    return " ".join(
        f"{h}:{(new[h] / old[h] - 1) * 100:+.1f}%" if old[h] else f"{h}:-"
        for h in ("closeup", "click", "repin", "long_click")
    )


def print_table(rows: list[DayRow], heads: tuple[str, ...]) -> None:
    print("\n== the closed loop, per day ==")
    print(f"AUC on the next day: {' '.join(heads)}; engagement: champion vs holdout (previous)")
    header = f"{'ds':<12}{'served by':<34}{'logged':>8}{'sampled':>9}{'ranker':>8}"
    print(header + f"  {'AUC':<28}{'gate':<6}{'champion':<16}engagement")
    for r in rows:
        sampled = f"{r.sampled:,}" if r.sampled is not None else "-"
        print(
            f"{r.ds:<12}{r.served_by[:33]:<34}{r.logged:>8,}{sampled:>9}{r.version:>8}  "
            f"{r.aucs:<28}{r.gate:<6}{r.champion:<16}{_engagement(r)}"
        )


def print_replay_evaluation(cfg: RankerConfig, seed: int, day: date) -> None:
    """Per-head AUC of the champion on a later day served in random order, vs the oracle."""
    client = MlflowClient(cfg.mlflow.resolved_uri())
    champion = alias_pair(client, cfg.mlflow.registered_model)
    if champion is None:
        print("\nno champion was deployed")
        return
    frame = replay_day(cfg, seed, day, REPLAY_REQUESTS)
    uri = f"models:/{cfg.mlflow.registered_model}/{champion.version}"
    scores = mlflow.pyfunc.load_model(uri).predict(frame[list(cfg.features.inputs)])
    table = replay_aucs(frame, scores, tuple(scores.columns.str.removeprefix("p_")))
    print(f"\nchampion v{champion.version}: per-head AUC on {day}, {REPLAY_REQUESTS:,} requests")
    print("in random order (unbiased), against the heuristic policy and the oracle:")
    print(table.round(4).to_string())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cfg = load_config()
    home = ranker_home()
    # The demo prints its own summary; MLflow's per-call notices would bury it.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    t0 = time.perf_counter()
    start = date.fromisoformat(args.start)
    mlflow.set_tracking_uri(cfg.mlflow.resolved_uri())
    client = MlflowClient()
    print(f"RANKER_HOME={home}; {args.days} days of {args.requests:,} requests from {start}")
    rows: list[DayRow] = []
    with dg.DagsterInstance.get() as instance:
        demo = Demo(cfg, instance)
        demo.run(["sampling_config"], None)  # record each config's hash before sampling
        for i in range(args.days):
            ds = start + timedelta(days=i)
            policy = serving_policy(cfg, client)
            (report,) = simulate_to_landing(
                cfg.world, cfg.logging, home / "landing", ds, 1, args.requests, args.seed, policy
            )
            row = DayRow(str(ds), served_by=policy.name, engagement=report.arms or {})
            rows.append(row)
            print(f"\n== {ds}: served by {policy.name} ==", flush=True)
            demo.ingest(row)
            if i >= 1:
                demo.prepare(rows[i - 1])
            if i >= 2:
                demo.validate_and_deploy(rows[i - 2], rows[i - 1].ds)
    print_table(rows, tuple(cfg.model.heads))
    print_replay_evaluation(cfg, args.seed, start + timedelta(days=args.days))
    print(f"\nclosed loop of {args.days} days in {time.perf_counter() - t0:.0f} s.")
    print(f"Delta tables under {home / 'lake'}; MLflow at {cfg.mlflow.resolved_uri()}.")
    print("`make ui` shows the asset graph and every run above; `make mlflow-ui` the models.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
