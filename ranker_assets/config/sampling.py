"""Sampling configs: YAML files under configs/sampling/, one per named sampling strategy.

"Downsample impressions, keep all positives" leaves value in the data; a sampling config says
per label how much to keep, how many negatives to keep (a rate, or a target positive ratio for
a head), how to rebalance content types, how to cap heavy users and requests, and what to do
with randomized-traffic rows. The sampler turns it into keep probabilities and weights that
keep the model calibrated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError

from ranker_assets.config.base import Strict, field_errors
from ranker_assets.config.logs import Vocabulary

KeepRate = Annotated[float, Field(gt=0.0, le=1.0)]
Boost = Annotated[float, Field(gt=0.0)]


class SamplingConfigError(ValueError):
    """A sampling config file is invalid; the message names the file and each bad field."""


class NegativeTarget(Strict):
    """Keep as many label-free rows as it takes for `head` to be `positive_ratio` of the rows."""

    head: str  # a label event of the ranker's vocabulary
    positive_ratio: float = Field(gt=0.0, lt=1.0)
    min_rate: float = Field(0.001, gt=0.0, le=1.0)


class SamplingConfig(Strict):
    """One sampling strategy. Keep probabilities are clipped to 1; weights are 1 / probability."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    seed: int = 0
    # A row positive in any of these labels is kept with the largest of their rates; a row
    # positive only in unlisted labels counts as label-free. Empty: every label event at 1.0.
    label_keep: dict[str, KeepRate] = Field(default_factory=dict)
    # Rows positive in none of them: a fixed rate, or a target positive ratio for one head.
    negative_keep: Annotated[float, Field(ge=0.0, le=1.0)] | NegativeTarget = 0.1
    content_type_boost: dict[str, Boost] = Field(default_factory=dict)
    max_per_user: int | None = Field(None, gt=0)
    max_per_request: int | None = Field(None, gt=0)
    # Randomized traffic is the unbiased slice: never downsample it, sample it like the rest,
    # or drop it. Caps are hard limits and apply to every row.
    randomized: Literal["keep_all", "sample", "drop"] = "keep_all"

    def check_names(self, labels: tuple[str, ...], content_types: tuple[str, ...] | None) -> None:
        """Raise SamplingConfigError when the config names labels or content types that the
        ranker's vocabulary does not have (a typo would otherwise sample silently)."""
        problems = [
            f"label_keep.{k}: not a label event" for k in self.label_keep if k not in labels
        ]
        if isinstance(self.negative_keep, NegativeTarget) and self.negative_keep.head not in labels:
            problems.append(f"negative_keep.head: {self.negative_keep.head!r} is not a label event")
        for ctype in self.content_type_boost:
            if content_types is None or ctype not in content_types:
                problems.append(f"content_type_boost.{ctype}: not a content type of the logs")
        if problems:
            raise SamplingConfigError(
                f"sampling config {self.name!r}: "
                + "; ".join(problems)
                + f" (label events: {list(labels)}, content types: {content_types})"
            )

    def keep_rates(self, labels: tuple[str, ...]) -> dict[str, float]:
        """The protected labels and their keep rates (all of `labels` at 1.0 when none listed)."""
        return dict(self.label_keep) if self.label_keep else dict.fromkeys(labels, 1.0)

    def content_hash(self) -> str:
        """Identity of the sampling logic: equal hashes sample identically (the lineage key)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_sampling_config(path: Path, vocab: Vocabulary | None = None) -> SamplingConfig:
    """Load one YAML file; its name is the file's stem unless the file sets it. Label and
    content-type names are checked against the ranker's vocabulary (closeup's by default)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SamplingConfigError(f"{path}: not valid YAML: {err}") from err
    if raw is None:  # an empty file is a mistake, not a request for every default
        raise SamplingConfigError(f"{path}: the file is empty; write the sampling fields")
    if not isinstance(raw, dict):
        raise SamplingConfigError(f"{path}: expected a mapping of fields")
    raw.setdefault("name", path.stem)
    try:
        cfg = SamplingConfig.model_validate(raw)
    except ValidationError as err:
        raise SamplingConfigError(f"{path}: invalid sampling config: {field_errors(err)}") from None
    vocab = vocab or Vocabulary()
    try:
        cfg.check_names(vocab.label_events, vocab.content_types)
    except SamplingConfigError as err:
        raise SamplingConfigError(f"{path}: {err}") from None
    return cfg


def scan_sampling_configs(
    folder: Path, vocab: Vocabulary | None = None
) -> tuple[dict[str, SamplingConfig], dict[str, str]]:
    """Every `*.yaml` under `folder`: (valid configs by name, broken files by stem -> error).

    A broken file does not hide the others: each config's partitions stand on their own.
    """
    configs: dict[str, SamplingConfig] = {}
    broken: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            cfg = load_sampling_config(path, vocab)
            if cfg.name in configs:
                raise SamplingConfigError(f"{path}: duplicate sampling config name {cfg.name!r}")
        except SamplingConfigError as err:
            broken[path.stem] = str(err)
            continue
        configs[cfg.name] = cfg
    if not configs and not broken:
        raise SamplingConfigError(f"no sampling configs (*.yaml) under {folder}")
    return configs, broken


def load_sampling_configs(
    folder: Path, vocab: Vocabulary | None = None
) -> dict[str, SamplingConfig]:
    """Every `*.yaml` under `folder`, by name; raises on the first broken one."""
    configs, broken = scan_sampling_configs(folder, vocab)
    if broken:
        raise SamplingConfigError(next(iter(broken.values())))
    return configs


def sampling_config(folder: Path, name: str, vocab: Vocabulary | None = None) -> SamplingConfig:
    """One config by name, read fresh; a broken one raises with its own error only."""
    configs, broken = scan_sampling_configs(folder, vocab)
    if name in configs:
        return configs[name]
    if name in broken:
        raise SamplingConfigError(broken[name])
    raise SamplingConfigError(f"no sampling config named {name!r} under {folder}")
