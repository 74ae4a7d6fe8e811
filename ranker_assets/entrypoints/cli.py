"""`ranker-assets`: command-line entry points that do not need the Dagster UI."""

from __future__ import annotations

import argparse
import os
from datetime import date, timedelta
from pathlib import Path

from ranker_assets.config import ConfigError, load_config, ranker_home
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.reading import IngestionError
from ranker_assets.logs.screening import log_specs
from ranker_assets.logs.simulated import simulate_to_landing


def _simulate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    logging = cfg.logging.model_copy(
        update={
            k: v
            for k, v in {"mode": args.logging, "randomized_share": args.randomized_share}.items()
            if v is not None
        }
    )
    landing = Path(args.landing) if args.landing else ranker_home() / "landing"
    reports = simulate_to_landing(
        cfg.world,
        logging,
        landing,
        date.fromisoformat(args.start),
        args.days,
        args.requests,
        args.seed,
    )
    print(
        f"landed {len(reports)} day(s) under {landing} (logging={logging.mode}, seed={args.seed})"
    )
    print(f"{'ds':<12}{'log':<14}{'rows':>12}{'bytes':>14}")
    for r in reports:
        for name, w in r.written.items():
            print(f"{r.ds!s:<12}{name:<14}{w.rows:>12,}{w.bytes:>14,}")
        print(
            f"{'':<12}{r.requests:,} requests, {r.served:,} served, {r.impressed:,} impressed, "
            f"{r.log_requests:,} feature-log requests before dedup, {r.seconds:.2f}s"
        )
    return 0


def _check_logs(args: argparse.Namespace) -> int:
    """Screen landed days exactly as ingestion will (the same reader and contract), without
    writing anything; exit 1 where ingestion would block a day or cannot read it."""
    cfg = load_config(args.config)
    landing = Path(args.landing) if args.landing else ranker_home() / "landing"
    specs = log_specs(cfg)
    bound = cfg.ingestion.quarantine_error_share
    problems = 0
    for i in range(args.days):
        ds = str(date.fromisoformat(args.start) + timedelta(days=i))
        for spec in specs:
            try:
                result = ingest_day(landing, spec, ds)
            except (IngestionError, ValueError) as err:
                problems += 1
                print(f"{ds} {spec.name}: cannot be read: {err}")
                continue
            if result.files == 0:
                problems += 1
                print(f"{ds} {spec.name}: cannot be read: no {spec.name} files under {landing}")
                continue
            counts = (
                f"{result.rows_in:,} rows: {result.kept:,} kept, {result.quarantined:,} "
                f"quarantined, {result.duplicates:,} duplicates"
            )
            if not result.quarantined:
                print(f"{ds} {spec.name}: ok ({counts})")
                continue
            blocks = result.quarantine_share > bound or result.kept == 0
            problems += blocks
            verdict = "ingestion would block the day" if blocks else "ingestion would warn"
            print(
                f"{ds} {spec.name} violates the log contract ({counts}; "
                f"{result.quarantine_share:.1%} quarantined, bound {bound:.1%}: {verdict})"
            )
            quarantine = result.quarantine.to_pandas()
            for (rule, column), rows in quarantine.groupby(
                ["rule", quarantine["column"].fillna("")], sort=True
            ):
                first = rows.iloc[0]
                print(
                    f"  {len(rows):>8,} x {rule}({column}): {first['detail']}; "
                    f"e.g. {str(first['raw_payload'])[:160]}"
                )
    return 1 if problems else 0


def _rollback(args: argparse.Namespace) -> int:
    """Serve the previous champion pair again (or a named version), and record it."""
    from mlflow import set_tracking_uri
    from mlflow.tracking import MlflowClient

    from ranker_assets.deployment.decisions import rollback
    from ranker_assets.infra.lake import Lake
    from ranker_assets.training.registry import NotDeployable

    cfg = load_config(args.config)
    uri = cfg.mlflow.resolved_uri()
    set_tracking_uri(uri)
    lake = Lake(args.lake or os.environ.get("RANKER_LAKE_URI") or str(ranker_home() / "lake"))
    try:
        decision = rollback(
            lake, MlflowClient(uri), cfg.mlflow.registered_model, args.to, args.force
        )
    except NotDeployable as err:
        print(f"rollback refused: {err}")
        return 1
    if "FORCED" in decision.reasons:
        print(f"warning: {decision.reasons}")
    print(
        f"{cfg.mlflow.registered_model}: champion is now v{decision.champion_version} "
        f"(raw v{decision.champion_raw_version}); previous is v{decision.previous_version} "
        f"(raw v{decision.previous_raw_version}); recorded in {lake.uri('deployments')}"
    )
    return 0


def _backfill(args: argparse.Namespace) -> int:
    """Materialize a day range for a selection of stages, in-process, upstream first."""
    import dagster as dg

    from ranker_assets.definitions import build_definitions
    from ranker_assets.entrypoints.backfill import backfill
    from ranker_assets.orchestration.automation import STAGES

    cfg = load_config(args.config)
    defs = build_definitions(cfg)
    select = args.select.split(",") if args.select else list(STAGES)
    configs = args.configs.split(",") if args.configs else None
    with dg.DagsterInstance.get() as instance:
        summary = backfill(
            defs,
            instance,
            cfg,
            defs.resources["lake"].lake(),
            date.fromisoformat(args.start),
            date.fromisoformat(args.end),
            select,
            configs,
        )
    print("\n" + summary.table())
    for line in summary.blocked:
        print(f"blocked: {line}")
    return 0 if summary.ok else 1


def _free_slots(args: argparse.Namespace) -> int:
    """Fail runs whose process died and free their pool slots; or free the run(s) named."""
    import dagster as dg

    from ranker_assets.orchestration.dead_runs import free_slots, reap_dead_runs

    with dg.DagsterInstance.get() as instance:
        reaped = (
            [free_slots(instance, run_id) for run_id in args.run_ids]
            if args.run_ids
            else reap_dead_runs(instance)
        )
    for r in reaped:
        print(f"run {r.run_id}: {r.why}; its pool slots are free")
    if not reaped:
        print("no dead run holds a pool slot")
    return 0


def _example_logs(args: argparse.Namespace) -> int:
    """Land the bandit example's logs (configs/examples/bandit_ranker.yaml reads them)."""
    from ranker_assets.examples.bandit_logs import land_bandit_logs

    landing = Path(args.landing) if args.landing else ranker_home() / "landing"
    land_bandit_logs(landing, date.fromisoformat(args.start), args.days, args.requests, args.seed)
    print(f"landed {args.days} day(s) of bandit logs under {landing}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ranker-assets", description=__doc__)
    parser.add_argument(
        "--config", help="ranker config YAML (default: $RANKER_CONFIG or configs/ranker.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate closeup traffic and land its logs")
    sim.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    sim.add_argument("--days", type=int, default=1)
    sim.add_argument("--requests", type=int, default=2000, help="requests per day")
    sim.add_argument("--landing", help="landing directory (default: $RANKER_HOME/landing)")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--logging", choices=["hybrid", "full"], help="override logging.mode")
    sim.add_argument("--randomized-share", type=float, help="override logging.randomized_share")
    sim.set_defaults(func=_simulate)
    check = sub.add_parser("check-logs", help="validate landed logs against the log contract")
    check.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    check.add_argument("--days", type=int, default=1)
    check.add_argument("--landing", help="landing directory (default: $RANKER_HOME/landing)")
    check.set_defaults(func=_check_logs)
    example = sub.add_parser(
        "example-logs", help="land the non-closeup example's logs (bandit item recommender)"
    )
    example.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    example.add_argument("--days", type=int, default=4)
    example.add_argument("--requests", type=int, default=2000, help="requests per day")
    example.add_argument("--landing", help="landing directory (default: $RANKER_HOME/landing)")
    example.add_argument("--seed", type=int, default=0)
    example.set_defaults(func=_example_logs)
    fill = sub.add_parser(
        "backfill", help="materialize a day range for any stages, upstream first, in-process"
    )
    fill.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    fill.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
    fill.add_argument("--select", help="comma-separated stages (default: all, upstream first)")
    fill.add_argument("--configs", help="comma-separated sampling configs (default: all)")
    fill.set_defaults(func=_backfill)
    free = sub.add_parser(
        "free-slots",
        help="fail runs whose process died and free their pool slots (or the runs named)",
    )
    free.add_argument("run_ids", nargs="*", help="runs to free (e.g. of another host)")
    free.set_defaults(func=_free_slots)
    back = sub.add_parser("rollback", help="serve the previous champion (or --to VERSION) again")
    back.add_argument("--to", help="calibrated version to serve (its raw twin moves with it)")
    back.add_argument(
        "--force",
        action="store_true",
        help="serve a pair that never served nor passed its gates (recorded as forced)",
    )
    back.add_argument("--lake", help="lake root (default: $RANKER_LAKE_URI or $RANKER_HOME/lake)")
    back.set_defaults(func=_rollback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:  # a config mistake is the user's to fix: no traceback
        print(f"config error: {err}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
