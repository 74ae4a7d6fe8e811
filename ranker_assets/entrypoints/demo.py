"""`make demo`: the closed loop on simulated data, day by day, run by the automation conditions.

Each simulated day is served by the registry's champion (the heuristic until one is deployed,
with a holdout share still served by the previous one) and landed; then the graph's own
automation conditions (automation.py) are evaluated at 06:00 the next morning, as the sensor
would, and every run they request is executed: ingestion, the Joiner (once the next day's
events exist), the Sampler, retraining on the cadence, validation on the day the ranker never
saw, and the deploy gate. Every run goes to the persistent Dagster instance (DAGSTER_HOME), so
`make ui` shows them all. Ends with a table per day and the champion against the heuristic and
the oracle on randomized replay.
"""

from __future__ import annotations

import argparse
import logging
import time as clock
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from mlflow.utils import logging_utils as mlflow_logging

from ranker_assets.config import RankerConfig, load_config, ranker_home
from ranker_assets.definitions import build_definitions
from ranker_assets.deployment.closed_loop import serving_policy
from ranker_assets.evaluation.replay import replay_aucs, replay_day
from ranker_assets.evaluation.rows import training_day
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.orchestration.assets.observations import observe_in_process
from ranker_assets.orchestration.automation import stages
from ranker_assets.orchestration.dead_runs import watched_execute_in_process
from ranker_assets.training.registry import alias_pair
from ranker_assets.training.serving import pyfunc_input

REPLAY_REQUESTS = 4000
DAILY_REPLAY_REQUESTS = 2000
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


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
    # Replay AUC of the primary head on this day, randomized: serving champion/heuristic/oracle.
    replay: str = "-"


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    mats = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mats[0].metadata.items()} if mats else {}


class Demo:
    """Lets the graph's automation conditions decide what runs, at simulated times.

    After each simulated day lands, the sources are observed and the conditions are evaluated
    as the sensor would at 06:00 the next morning; everything they request runs (one partition
    per run, upstream first), and they are evaluated again until they request nothing.
    """

    def __init__(self, cfg: RankerConfig, instance: dg.DagsterInstance) -> None:
        self.cfg = cfg
        self.instance = instance
        self.defs = build_definitions(cfg)
        self.job = self.defs.resolve_implicit_global_asset_job_def()
        self.cursor: object = None
        self.observed: str | None = None  # the observe_sources sensor's cursor
        self.results: dict[tuple[str, str], dict[str, object]] = {}
        self.runs = 0

    def _run(self, assets: list[str], key: str | None) -> dg.ExecuteInProcessResult:
        self.runs += 1
        return watched_execute_in_process(
            self.job,
            self.instance,
            run_config=QUIET,
            partition_key=key,
            asset_selection=[dg.AssetKey.from_user_string(a) for a in assets],
            raise_on_error=False,
        )

    def start(self, now: datetime) -> None:
        """A first evaluation before anything lands, as a sensor running from day one would."""
        self.cursor = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, evaluation_time=now
        ).cursor

    def tick(self, now: datetime) -> None:
        """Observe the sources, then run what the automation conditions request at `now`."""
        self.observed = observe_in_process(self.defs, self.instance, self.observed)
        for _ in range(len(stages(self.cfg)) + 2):
            evaluation = dg.evaluate_automation_conditions(
                defs=self.defs, instance=self.instance, evaluation_time=now, cursor=self.cursor
            )
            self.cursor = evaluation.cursor
            requested = [
                (asset, str(key))
                for asset in stages(self.cfg)
                for key in sorted(evaluation.get_requested_partitions(dg.AssetKey(asset)), key=str)
            ]
            if not requested:
                return
            for asset, key in requested:
                result = self._run([asset], key)
                self.results[(asset, key)] = _metadata(result, asset)
                status = "ok" if result.success else "FAILED (see the run in the UI)"
                print(f"  {asset:<18} {key:<24} {status}", flush=True)

    def fill(self, rows: dict[str, DayRow]) -> None:
        """Per day: what its data became (the default config's datasets and rankers)."""
        default = self.cfg.sampling.default
        for (asset, key), m in self.results.items():
            day = key.split("|")[-1]
            config = key.split("|")[0] if "|" in key else default
            trained = (
                training_day(day) if asset in ("validation_report", "deployed_ranker") else day
            )
            row = rows.get(trained)
            if row is None or (config != default and asset != "deployed_ranker"):
                continue
            if asset == "feature_log":
                row.logged = int(m.get("rows_kept", 0))
            elif asset == "sampled_dataset":
                row.sampled = int(m.get("rows_out", 0))
            elif asset == "ranker_model":
                row.version = str(m.get("version", "blocked"))
            elif asset == "validation_report" and m:
                row.aucs = " ".join(f"{m[f'auc_{h}']:.4f}" for h in self.cfg.model.heads)
                row.gate = "PASS" if m.get("passed") else "FAIL"
            elif asset == "deployed_ranker" and m:
                row.champion = f"{m.get('action')} -> v{m.get('champion_version')}"


def _engagement(row: DayRow) -> str:
    if not row.engagement:
        return "-"
    new, old = row.engagement["champion"], row.engagement["previous"]
    return " ".join(
        f"{h}:{(new[h] / old[h] - 1) * 100:+.1f}%" if old[h] else f"{h}:-"
        for h in ("closeup", "click", "repin", "long_click")
    )


def print_table(rows: list[DayRow], heads: tuple[str, ...], primary: str) -> None:
    print("\n== the closed loop, per day ==")
    print(
        f"AUC on the next day: {' '.join(heads)}; replay: {primary} AUC of the day's serving "
        "champion / heuristic / oracle on the day in random order; engagement: champion vs "
        "holdout (previous)"
    )
    header = f"{'ds':<12}{'served by':<38}{'logged':>8}{'sampled':>9}{'ranker':>8}"
    print(header + f"  {'AUC':<28}{'gate':<6}{'champion':<16}{'replay':<22}engagement")
    for r in rows:
        sampled = f"{r.sampled:,}" if r.sampled is not None else "-"
        print(
            f"{r.ds:<12}{r.served_by[:37]:<38}{r.logged:>8,}{sampled:>9}{r.version:>8}  "
            f"{r.aucs:<28}{r.gate:<6}{r.champion:<16}{r.replay:<22}{_engagement(r)}"
        )


def champion_replay(
    cfg: RankerConfig, client: MlflowClient, seed: int, day: date, requests: int
) -> tuple[str, pd.DataFrame] | None:
    """The serving champion's per-head AUC on `day` served in random order, beside the
    heuristic and the oracle (None before a champion serves)."""
    champion = alias_pair(client, cfg.mlflow.registered_model)
    if champion is None:
        return None
    frame = replay_day(cfg, seed, day, requests)
    uri = f"models:/{cfg.mlflow.registered_model}/{champion.version}"
    scores = mlflow.pyfunc.load_model(uri).predict(pyfunc_input(frame, cfg.features))
    heads = tuple(scores.columns.str.removeprefix("p_"))
    return champion.version, replay_aucs(frame, scores, heads)


def daily_replay(cfg: RankerConfig, client: MlflowClient, seed: int, day: date) -> str:
    """One table cell: the primary head's replay AUC of champion / heuristic / oracle."""
    replay = champion_replay(cfg, client, seed, day, DAILY_REPLAY_REQUESTS)
    if replay is None:
        return "-"
    version, table = replay
    row = table.loc[cfg.gates.primary_head]
    return f"v{version} {row['model']:.3f}/{row['heuristic']:.3f}/{row['oracle']:.3f}"


def print_replay_evaluation(cfg: RankerConfig, client: MlflowClient, seed: int, day: date) -> None:
    """Per-head AUC of the champion on a later day served in random order, vs the oracle."""
    replay = champion_replay(cfg, client, seed, day, REPLAY_REQUESTS)
    if replay is None:
        print("\nno champion was deployed")
        return
    version, table = replay
    print(f"\nchampion v{version}: per-head AUC on {day}, {REPLAY_REQUESTS:,} requests")
    print("in random order (unbiased), against the heuristic policy and the oracle:")
    print(table.round(4).to_string())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cfg = load_config()
    home = ranker_home()
    # The demo prints its own summary; MLflow's per-call notices would bury it: its loggers
    # below ERROR, and its stream (registration notices are printed to it, not logged) off.
    # A failed run still says FAILED here and keeps its error in the Dagster UI.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    mlflow_logging.disable_logging()
    t0 = clock.perf_counter()
    start = date.fromisoformat(args.start)
    mlflow.set_tracking_uri(cfg.mlflow.resolved_uri())
    client = MlflowClient()
    print(f"RANKER_HOME={home}; {args.days} days of {args.requests:,} requests from {start}")
    rows: dict[str, DayRow] = {}
    with dg.DagsterInstance.get() as instance:
        demo = Demo(cfg, instance)
        demo.start(datetime.combine(start, time(), UTC))
        for i in range(args.days):
            ds = start + timedelta(days=i)
            policy = serving_policy(cfg, client)
            (report,) = simulate_to_landing(
                cfg.world, cfg.logging, home / "landing", ds, 1, args.requests, args.seed, policy
            )
            rows[str(ds)] = DayRow(
                str(ds),
                served_by=policy.name,
                engagement=report.arms or {},
                replay=daily_replay(cfg, client, args.seed, ds),
            )
            now = datetime.combine(ds + timedelta(days=1), time(6), UTC)
            print(
                f"\n== {ds} landed, served by {policy.name}; automation at {now:%Y-%m-%d %H:%M} =="
            )
            demo.tick(now)
        demo.fill(rows)
    print_table(list(rows.values()), tuple(cfg.model.heads), cfg.gates.primary_head)
    print_replay_evaluation(cfg, client, args.seed, start + timedelta(days=args.days))
    print(
        f"\nclosed loop of {args.days} days in {clock.perf_counter() - t0:.0f} s, "
        f"{demo.runs} runs requested by the automation conditions."
    )
    print(f"Delta tables under {home / 'lake'}; MLflow at {cfg.mlflow.resolved_uri()}.")
    print("`make ui` shows the asset graph and every run above; `make mlflow-ui` the models.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
