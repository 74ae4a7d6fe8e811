"""The `observe_sources` sensor: landed days and sampling configs get data versions, no runs.

Every minute it fingerprints each landed day (file names, sizes, modification times) and
hashes each sampling config, and reports an observation only for what changed since its
cursor, as a runless event. Without a cursor (a new daemon, a new Dagster home) it starts from
the versions the instance already recorded, so history is not reported as new again.
Downstream automation conditions react to those new versions. (Observing by automation
condition instead would launch a run per partition per tick.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from ranker_assets.config import RankerConfig
from ranker_assets.config.sampling import scan_sampling_configs
from ranker_assets.deployment.decisions import DEPLOYMENTS
from ranker_assets.infra.lake import Lake
from ranker_assets.logs.ingestion import QUARANTINE_TABLE
from ranker_assets.logs.landing import day_fingerprints
from ranker_assets.logs.screening import log_specs
from ranker_assets.orchestration.assets.metadata import table_metadata
from ranker_assets.orchestration.resources import LakeResource, LandingResource
from ranker_assets.sampling.run import HEALTH

# Tables the stages append to, shown as assets: what each records, and the asset that writes it.
LEDGERS = {
    QUARANTINE_TABLE: (
        (),  # written by every ingestion asset: see ledger_specs
        "Every rejected log row: the rule it broke, the column and the raw payload.",
    ),
    HEALTH: (
        ("sampled_dataset",),
        "Per (day, sampling config): rows in and out, negative keep rate, positives per head.",
    ),
    DEPLOYMENTS: (
        ("deployed_ranker",),
        "Every deploy decision (promote, reject, rollback) with its reasons and versions.",
    ),
}


def ledger_assets(cfg: RankerConfig) -> dg.AssetsDefinition:
    """The ledger tables as observable assets: the stages that own them append to them, so the
    UI offers "Observe" (row count, schema, Delta version), never "Materialize". The
    observe_sources sensor reports the same observation whenever a ledger changes."""
    logs = tuple(s.name for s in log_specs(cfg))
    specs = [
        dg.AssetSpec(
            table,
            deps=writers or logs,
            group_name="ledgers",
            kinds={"delta"},
            tags={"stage": "ledger"},
            description=f"{text} Appended to by the asset(s) upstream; observed, not materialized.",
        )
        for table, (writers, text) in LEDGERS.items()
    ]

    # `context` is unannotated: this decorator rejects the string annotations of this module.
    @dg.multi_observable_source_asset(specs=specs, can_subset=True)
    def observe_ledgers(context, lake: LakeResource) -> Iterator[dg.ObserveResult]:  # noqa: ANN001
        delta = lake.lake()
        for key in sorted(context.selected_asset_keys):
            table = key.to_user_string()
            if not delta.exists(table):
                yield dg.ObserveResult(
                    asset_key=key, metadata={"rows": 0, "note": "not written yet"}
                )
                continue
            version = str(delta.table(table).version())
            yield dg.ObserveResult(
                asset_key=key,
                data_version=dg.DataVersion(version),
                metadata=_ledger_metadata(delta, table, version),
            )

    return observe_ledgers


def _ledger_metadata(lake: Lake, table: str, version: str) -> dict[str, object]:
    return {"delta_version": int(version), **table_metadata(lake, table, lake.row_count(table))}


def ledger_versions(lake: Lake) -> dict[str, dict[str, str]]:
    """Ledger table -> {"": its Delta version}, for the tables that exist."""
    return {t: {"": str(lake.table(t).version())} for t in LEDGERS if lake.exists(t)}


def _observation(lake: Lake, key: str, part: str, version: str) -> dg.AssetObservation:
    if key not in LEDGERS:
        return dg.AssetObservation(
            dg.AssetKey.from_user_string(key), partition=part, tags={DATA_VERSION_TAG: version}
        )
    return dg.AssetObservation(
        dg.AssetKey(key),
        tags={DATA_VERSION_TAG: version},
        metadata=_ledger_metadata(lake, key, version),
    )


def current_versions(
    cfg: RankerConfig, landing: LandingResource, days: dg.PartitionsDefinition
) -> dict[str, dict[str, str]]:
    """Source asset key -> partition -> data version, for everything observable now."""
    known = set(days.get_partition_keys())
    versions = {
        f"landing/{log}": {
            ds: v for ds, v in day_fingerprints(landing.root(), log).items() if ds in known
        }
        for log in (s.name for s in log_specs(cfg))
    }
    valid, broken = scan_sampling_configs(cfg.sampling.configs_path, cfg.vocabulary)
    versions["sampling_config"] = {n: c.content_hash() for n, c in valid.items()} | {
        n: "broken-" + hashlib.sha256(e.encode()).hexdigest()[:12] for n, e in broken.items()
    }
    return versions


def recorded_versions(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, dict[str, str]]:
    """Source asset key -> partition -> its latest observed data version in `instance`."""
    out: dict[str, dict[str, str]] = {}
    for key in keys:
        latest = out.setdefault(key, {})
        cursor, more = None, True
        while more:  # newest first, in pages of the storage's maximum
            page = instance.fetch_observations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey.from_user_string(key)),
                limit=10_000,
                cursor=cursor,
            )
            for r in page.records:
                obs = r.asset_observation
                if obs is not None and DATA_VERSION_TAG in obs.tags:
                    latest.setdefault(r.partition_key or "", obs.tags[DATA_VERSION_TAG])
            cursor, more = page.cursor, page.has_more
    return out


def observe_sources_sensor(cfg: RankerConfig, days: dg.PartitionsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="observe_sources",
        minimum_interval_seconds=cfg.cadence.observe_every_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports a new data version for each landed day or sampling config whose "
        "files changed (the automation conditions react to them), and the row counts of the "
        "ledger tables (quarantine, dataset health, deployments) when they change.",
    )
    def observe_sources(
        context: dg.SensorEvaluationContext, landing: LandingResource, lake: LakeResource
    ) -> dg.SensorResult:
        delta = lake.lake()
        now = current_versions(cfg, landing, days) | ledger_versions(delta)
        seen: dict[str, dict[str, str]] = (
            json.loads(context.cursor)
            if context.cursor
            else recorded_versions(context.instance, list(now))
        )
        changed = [
            (key, part, version)
            for key, parts in now.items()
            for part, version in sorted(parts.items())
            if seen.get(key, {}).get(part) != version
        ]
        events = [_observation(delta, key, part, version) for key, part, version in changed]
        names = [f"{key}[{part}]" for key, part, _ in changed]
        # Dagster marks every tick without runs "Skipped": the reason says what was recorded.
        said = (
            f"recorded {len(events)} observation(s), requested no runs (the automation sensor "
            f"acts on them): {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
            if events
            else "nothing changed: no observation recorded"
        )
        return dg.SensorResult(
            asset_events=events, cursor=json.dumps(now, sort_keys=True), skip_reason=said
        )

    return observe_sources


def observe_in_process(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> str | None:
    """One tick of `observe_sources` outside the daemon (the demo, tests): its observations are
    recorded in `instance` exactly as the daemon records them. Returns the new cursor."""
    (sensor,) = [s for s in defs.sensors or () if s.name == "observe_sources"]
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": defs.resources["landing"], "lake": defs.resources["lake"]},
    )
    result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result.cursor
