"""The registered pair: a calibrated ranker and its raw twin from one training run.

Serving and rollback move both halves together, and a report compares a challenger with the
pair that serves, so the type and its look-ups live here, beside the registration that makes
pairs (tracking.py), below every stage that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ranker_assets.training.tracking import CHAMPION, PAIR_COMPLETE, raw_name


class NotDeployable(ValueError):
    """A version that cannot serve (half-made pair, unknown version); the message says why."""


@dataclass(frozen=True)
class RankerPair:
    """A calibrated version and its raw twin, from the same training run."""

    version: str
    raw_version: str
    ds: str = ""  # the last day of its training window
    config: str = ""  # its sampling config


def complete_pair(client: MlflowClient, name: str, version: str) -> RankerPair:
    """The pair of calibrated `version`, if both halves were registered and marked complete."""
    version = str(version)  # the registry returns ints from aliases, strings elsewhere
    try:
        mv = client.get_model_version(name, version)
    except MlflowException as err:
        raise NotDeployable(f"{name} version {version} does not exist") from err
    raw = mv.tags.get("raw_version")
    if mv.tags.get(PAIR_COMPLETE) != "true" or not raw:
        raise NotDeployable(f"{name} version {version} is half made (its pair never completed)")
    try:
        raw_mv = client.get_model_version(raw_name(name), raw)
    except MlflowException as err:
        raise NotDeployable(f"{name} v{version}: its raw twin v{raw} does not exist") from err
    if raw_mv.tags.get(PAIR_COMPLETE) != "true" or raw_mv.tags.get("calibrated_version") != version:
        raise NotDeployable(f"{name} v{version}: raw v{raw} is not its complete twin")
    return RankerPair(
        version, raw, mv.tags.get("partition_ds", ""), mv.tags.get("sampling_config", "")
    )


def alias_pair(client: MlflowClient, name: str, alias: str = CHAMPION) -> RankerPair | None:
    """The pair behind an alias of the calibrated model (the raw twin is read from its tags)."""
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return complete_pair(client, name, mv.version)


def set_aliases(client: MlflowClient, name: str, alias: str, pair: RankerPair) -> None:
    client.set_registered_model_alias(name, alias, pair.version)
    client.set_registered_model_alias(raw_name(name), alias, pair.raw_version)
