"""The deploy gate's last step: which registered ranker serves, and the history of decisions.

Serving reads the MLflow alias `champion` of the calibrated model (`<name>`) and of the raw
model (`<name>_raw`, the next distillation teacher); they move together, and `previous` keeps
the pair they replaced, for rollback and the holdout experiment. Only complete pairs (see
training/registry.py) can deploy. Every decision, promotion or not, is appended to the
`deployments` Delta table first, so aliases that a crash left behind are restored from it.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
from mlflow.tracking import MlflowClient

from ranker_assets.config import ranker_home
from ranker_assets.evaluation.report import VALIDATION_TABLE
from ranker_assets.infra.lake import Lake
from ranker_assets.training.registry import (
    NotDeployable,
    RankerPair,
    alias_pair,
    complete_pair,
    set_aliases,
)
from ranker_assets.training.tracking import CHAMPION, PREVIOUS

DEPLOYMENTS = "deployments"


@dataclass(frozen=True)
class Decision:
    """One row of `deployments`: what was decided for which day, and why."""

    action: str  # promote | keep | reject | rollback
    ds: str
    config: str
    champion_version: str  # the calibrated version serving after the decision
    champion_raw_version: str
    previous_version: str
    previous_raw_version: str
    challenger_version: str
    reasons: str
    dagster_run_id: str = ""
    decided_at: str = ""

    def row(self) -> pa.Table:
        return pa.table({k: [v] for k, v in asdict(self).items()})


def _decide(
    lake: Lake,
    client: MlflowClient,
    name: str,
    action: str,
    serving: RankerPair | None,
    previous: RankerPair | None,
    **fields: str,
) -> Decision:
    """Record the decision, then make the aliases say it (a crash between: see `reconcile`)."""
    decision = Decision(
        action=action,
        champion_version=serving.version if serving else "",
        champion_raw_version=serving.raw_version if serving else "",
        previous_version=previous.version if previous else "",
        previous_raw_version=previous.raw_version if previous else "",
        decided_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        **fields,
    )
    lake.append(DEPLOYMENTS, decision.row())
    if action in ("promote", "rollback"):
        if previous:
            set_aliases(client, name, PREVIOUS, previous)
        if serving:
            set_aliases(client, name, CHAMPION, serving)
    return decision


def reconcile(lake: Lake, client: MlflowClient, name: str) -> bool:
    """Make the aliases match the last promote/rollback in `deployments` (after a crash).

    Returns whether anything had to be moved.
    """
    if not lake.exists(DEPLOYMENTS):
        return False
    rows = [
        r
        for r in lake.read(DEPLOYMENTS).to_pylist()
        if r["action"] in ("promote", "rollback") and r["champion_version"]
    ]
    if not rows:
        return False
    last = max(rows, key=lambda r: r["decided_at"])
    moved = False
    for alias, version, raw in (
        (CHAMPION, last["champion_version"], last["champion_raw_version"]),
        (PREVIOUS, last["previous_version"], last["previous_raw_version"]),
    ):
        current = alias_pair(client, name, alias)
        if version and (current is None or current.version != version):
            set_aliases(client, name, alias, RankerPair(version, raw))
            moved = True
    return moved


@contextmanager
def decision_lock(lake: Lake, timeout_s: float = 600.0) -> Iterator[None]:
    """One deploy decision (or rollback) at a time per lake, across processes.

    Two decisions validated against the same champion must not both promote: the second has to
    see the first's champion (and find its own report stale). An exclusive `flock` on a file in
    the lake (or, for an object-store lake, under RANKER_HOME) serializes them; the kernel
    releases it when its holder dies, so a killed decision never blocks the next. Dagster's
    `deploy` pool (one slot) serializes `deployed_ranker` runs of one instance on any host.
    """
    local = "://" not in lake.root or lake.root.startswith("file://")
    if local:
        folder = Path(lake.root.removeprefix("file://"))
    else:
        folder = ranker_home() / "locks" / hashlib.sha256(lake.root.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with (folder / "_deployments.lock").open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another deploy decision on {lake.root} held its lock for "
                        f"{timeout_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def deploy_day(
    lake: Lake, client: MlflowClient, name: str, ds: str, primary_head: str, run_id: str = ""
) -> Decision:
    """Promote the best challenger validated for `ds` whose blocking gates all passed.

    A candidate is eligible when its gates passed, its pair is complete, the champion it was
    compared with still serves (else its report is stale), and its data is not older than the
    champion's. Among eligible ones, the best by the primary head's AUC wins. One decision at a
    time (`decision_lock`), each against the champion that serves when it starts.
    """
    with decision_lock(lake):
        return _deploy_day(lake, client, name, ds, primary_head, run_id)


def _deploy_day(
    lake: Lake, client: MlflowClient, name: str, ds: str, primary_head: str, run_id: str
) -> Decision:
    reconcile(lake, client, name)
    if not lake.has_data(VALIDATION_TABLE, ds):
        raise FileNotFoundError(f"no validation_report for {ds}: validate its rankers first")
    reports = lake.read(VALIDATION_TABLE, [ds]).to_pylist()
    champion = alias_pair(client, name)
    reasons, eligible = [], []
    for r in sorted(reports, key=lambda r: r["config"]):
        who = f"{r['config']} v{r['challenger_version']}"
        if not r["passed"]:
            reasons.append(f"{who}: failed gates: {r['failed_gates']}")
            continue
        try:
            pair = complete_pair(client, name, r["challenger_version"])
        except NotDeployable as err:
            reasons.append(f"{who}: {err}")
            continue
        validated_against = r["champion_version"] or ""
        if champion and champion.version == pair.version:
            # Already serves: this decision was made (a crash repaired by `reconcile`, a re-run).
            eligible.append((r[f"auc_{primary_head}"], r["config"], pair))
            continue
        if (champion.version if champion else "") != validated_against:
            reasons.append(
                f"{who}: stale report, validated against champion "
                f"{validated_against or 'none'} but v{champion.version if champion else '-'} "
                "serves now; re-run its validation_report"
            )
            continue
        if champion and champion.ds and pair.ds < champion.ds:
            reasons.append(f"{who}: trained on data up to {pair.ds}, older than the champion's")
            continue
        eligible.append((r[f"auc_{primary_head}"], r["config"], pair))
    fields = {"ds": ds, "dagster_run_id": run_id}
    if not eligible:
        return _decide(
            lake,
            client,
            name,
            "reject",
            champion,
            alias_pair(client, name, PREVIOUS),
            config="",
            challenger_version="",
            reasons="; ".join(reasons) or "no challenger",
            **fields,
        )
    auc, config, best = max(eligible, key=lambda e: (e[0], e[1]))
    others = [f"{c} v{p.version} (auc_{primary_head} {a:.4f})" for a, c, p in eligible if p != best]
    why = f"best passing challenger by auc_{primary_head} {auc:.4f}"
    if others:
        why += f" over {', '.join(others)}"
    if champion and champion.version == best.version:
        return _decide(
            lake,
            client,
            name,
            "keep",
            champion,
            alias_pair(client, name, PREVIOUS),
            config=config,
            challenger_version=best.version,
            reasons=f"v{best.version} already serves",
            **fields,
        )
    return _decide(
        lake,
        client,
        name,
        "promote",
        best,
        champion,
        config=config,
        challenger_version=best.version,
        reasons="; ".join([why, *reasons]),
        **fields,
    )


def rollback(
    lake: Lake, client: MlflowClient, name: str, to: str | None = None, force: bool = False
) -> Decision:
    """Serve `previous` again (or calibrated version `to`, with its raw twin); recorded.

    Only a pair that served before or passed its gates in a validation report may serve
    again; `force` overrides that, and the override is recorded with the decision.
    """
    with decision_lock(lake):
        return _rollback(lake, client, name, to, force)


def _vetted(lake: Lake, version: str) -> bool:
    """Whether calibrated `version` ever served, or passed its gates in a validation report."""
    served = lake.exists(DEPLOYMENTS) and any(
        r["action"] in ("promote", "rollback") and r["champion_version"] == version
        for r in lake.read(DEPLOYMENTS, columns=["action", "champion_version"]).to_pylist()
    )
    return served or (
        lake.exists(VALIDATION_TABLE)
        and any(
            r["passed"] and r["challenger_version"] == version
            for r in lake.read(
                VALIDATION_TABLE, columns=["passed", "challenger_version"]
            ).to_pylist()
        )
    )


def _rollback(lake: Lake, client: MlflowClient, name: str, to: str | None, force: bool) -> Decision:
    reconcile(lake, client, name)
    current = alias_pair(client, name)
    target = complete_pair(client, name, to) if to else alias_pair(client, name, PREVIOUS)
    if target is None:
        raise NotDeployable("no `previous` champion to roll back to; name a version with --to")
    if current and current.version == target.version:
        raise NotDeployable(f"v{target.version} already serves")
    why = f"rollback from v{current.version if current else '-'} to v{target.version}"
    if not _vetted(lake, target.version):
        if not force:
            raise NotDeployable(
                f"v{target.version} never served and never passed its gates in a validation "
                "report; pass --force to serve it anyway (the override is recorded)"
            )
        why += " FORCED: it never served and never passed its gates"
    return _decide(
        lake,
        client,
        name,
        "rollback",
        target,
        current,
        ds=target.ds,
        config=target.config,
        challenger_version=target.version,
        reasons=why,
    )


@dataclass(frozen=True)
class ChampionAge:
    """How old the serving model's data is, in days behind the newest landed day."""

    champion: RankerPair | None
    newest_landed: str | None
    days: int | None  # None: no champion or nothing landed

    def hours(self) -> float | None:
        return None if self.days is None else 24.0 * self.days


def champion_age(client: MlflowClient, name: str, landed_days: list[str]) -> ChampionAge:
    """The champion's last training day against the newest landed day."""
    champion = alias_pair(client, name)
    newest = max(landed_days) if landed_days else None
    if champion is None or newest is None or not champion.ds:
        return ChampionAge(champion, newest, None)
    age = (date.fromisoformat(newest) - date.fromisoformat(champion.ds)).days
    return ChampionAge(champion, newest, age)
