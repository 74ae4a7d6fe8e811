"""`make demo`: the main job on simulated data, end to end, through Dagster.

Simulates days of closeup traffic into the landing zone, then materializes, per day, the
logged-event assets and the Joiner in the persistent Dagster instance (DAGSTER_HOME), so the
runs show up in the UI (`make ui`). Prints what each stage did.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

import dagster as dg

from ranker_assets.config import load_config, ranker_home
from ranker_assets.definitions import build_definitions
from ranker_assets.world.simulator import simulate_to_landing


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def materialize_day(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    assets: list[str],
    ds: str | dg.MultiPartitionKey,
) -> dg.ExecuteInProcessResult:
    """Materialize `assets` for one day in one run, as the UI or a backfill would."""
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(a) for a in assets]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return job.execute_in_process(
        run_config=quiet, instance=instance, partition_key=ds, asset_selection=selection
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cfg = load_config()
    home = ranker_home()
    start = date.fromisoformat(args.start)
    print(f"RANKER_HOME={home}")
    reports = simulate_to_landing(
        cfg.world, cfg.logging, home / "landing", start, args.days, args.requests, args.seed
    )
    print("\n== 1. simulated closeup traffic (hybrid logging) ==")
    header = ("ds", "served", "impressed", "features", "events", "KB landed", "s")
    print(f"{header[0]:<12}" + "".join(f"{h:>11}" for h in header[1:]))
    for r in reports:
        kb = sum(w.bytes for k, w in r.written.items() if k != "ground_truth") / 1024
        print(
            f"{r.ds!s:<12}{r.served:>11,}{r.impressed:>11,}{r.written['feature_log'].rows:>11,}"
            f"{r.written['event_log'].rows:>11,}{kb:>11,.0f}{r.seconds:>11.2f}"
        )

    defs = build_definitions(cfg)
    days = [str(start + timedelta(days=i)) for i in range(args.days)]
    label_day = str(start + timedelta(days=args.days))  # labels of the last day mature here
    with dg.DagsterInstance.get() as instance:
        print("\n== 2. ingestion: landed logs -> Delta tables + quarantine (Dagster) ==")
        print(f"{'ds':<12}{'log':<13}{'rows in':>9}{'kept':>9}{'quarant.':>9}{'dups':>6}")
        for ds in [*days, label_day]:
            logs = ["feature_log", "event_log"] if ds in days else ["event_log"]
            result = materialize_day(defs, instance, logs, ds)
            for log in logs:
                m = _metadata(result, log)
                print(
                    f"{ds:<12}{log:<13}{m['rows_in']:>9,}{m['rows_kept']:>9,}"
                    f"{m['rows_quarantined']:>9,}{m['duplicates_dropped']:>6,}"
                )
        print("\n== 3. Joiner: features x mature labels -> training_examples (Spark, Dagster) ==")
        print(
            f"{'ds':<12}{'joined':>9}{'closeup':>9}{'click':>7}{'repin':>7}{'long':>6}{'hide':>6}"
        )
        for ds in days:
            m = _metadata(
                materialize_day(defs, instance, ["training_examples"], ds), "training_examples"
            )
            print(
                f"{ds:<12}{m['rows_joined']:>9,}{m['positives_closeup']:>9,}{m['positives_click']:>7,}"
                f"{m['positives_repin']:>7,}{m['positives_long_click']:>6,}{m['positives_hide']:>6,}"
            )
        sampling = cfg.sampling.default
        print(f"\n== 4. Sampler: training_examples -> sampled_dataset (config {sampling!r}) ==")
        for ds in days:
            key = dg.MultiPartitionKey({"ds": ds, "config": sampling})
            result = materialize_day(defs, instance, ["sampled_dataset"], key)
            m = _metadata(result, "sampled_dataset")
            (check,) = result.get_asset_check_evaluations()
            status = "healthy" if check.passed else f"UNHEALTHY: {check.metadata['problems'].value}"
            reused = " (reused by lineage)" if m["reused_by_lineage"] else ""
            print(f"\n-- {ds}: {status}{reused}\n{m['health']}")
    print(f"\nDelta tables under {home / 'lake'}; `make ui` shows the asset graph and the runs.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
