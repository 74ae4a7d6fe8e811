"""`make demo`: the main job on simulated data, end to end, printing what each stage did."""

from __future__ import annotations

import argparse
from datetime import date

from ranker_assets.config import load_config, ranker_home
from ranker_assets.world.simulator import simulate_to_landing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cfg = load_config()
    home = ranker_home()
    landing = home / "landing"
    print(f"RANKER_HOME={home}")
    reports = simulate_to_landing(
        cfg.world,
        cfg.logging,
        landing,
        date.fromisoformat(args.start),
        args.days,
        args.requests,
        args.seed,
    )
    print("\n== simulated closeup traffic (hybrid logging) ==")
    header = ("ds", "served", "impressed", "features", "events", "KB landed", "s")
    print(f"{header[0]:<12}" + "".join(f"{h:>11}" for h in header[1:]))
    for r in reports:
        kb = sum(w.bytes for k, w in r.written.items() if k != "ground_truth") / 1024
        print(
            f"{r.ds!s:<12}{r.served:>11,}{r.impressed:>11,}{r.written['feature_log'].rows:>11,}"
            f"{r.written['event_log'].rows:>11,}{kb:>11,.0f}{r.seconds:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
