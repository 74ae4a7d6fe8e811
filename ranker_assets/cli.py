"""`ranker-assets`: command-line entry points that do not need the Dagster UI."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from ranker_assets.config import load_config, ranker_home
from ranker_assets.world.simulator import simulate_to_landing


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
    print(f"{'ds':<12}{'log':<14}{'rows':>12}{'bytes':>14}{'seconds':>10}")
    for r in reports:
        for name, w in r.written.items():
            print(f"{r.ds!s:<12}{name:<14}{w.rows:>12,}{w.bytes:>14,}{r.seconds:>10.2f}")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
