from __future__ import annotations

from pathlib import Path

import pytest

from ranker_assets.config import load_config
from ranker_assets.config.sampling import (
    SamplingConfigError,
    load_sampling_config,
    load_sampling_configs,
)


def test_shipped_configs_load_and_hash_their_content() -> None:
    configs = load_sampling_configs(load_config().sampling.configs_path)
    assert {"legacy", "balanced"} <= set(configs)
    assert load_config().sampling.default in configs
    legacy = configs["legacy"]
    assert legacy.content_hash() == legacy.model_copy().content_hash()
    assert legacy.content_hash() != legacy.model_copy(update={"seed": 99}).content_hash()
    assert legacy.content_hash() != configs["balanced"].content_hash()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("label_keep: {repin: 1.5}", "label_keep.repin: Input should be less than or equal to 1"),
        ("label_keep: {swipe: 1.0}", "label_keep.swipe"),
        ("max_per_user: -3", "max_per_user: Input should be greater than 0"),
        ("max_per_request: 0", "max_per_request: Input should be greater than 0"),
        ("negative_keep: 1.2", "negative_keep"),
        ("negative_keep: {head: saves, positive_ratio: 0.2}", "negative_keep.head"),
        ("content_type_boost: {video: 0}", "content_type_boost.video"),
        ("randomised: drop", "randomised: Extra inputs are not permitted"),
        ("name: Bad-Name", "name: String should match pattern"),
    ],
)
def test_bad_configs_are_rejected_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SamplingConfigError) as err:
        load_sampling_config(path)
    assert field in str(err.value) and str(path) in str(err.value)


def test_duplicate_names_and_empty_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SamplingConfigError, match="no sampling configs"):
        load_sampling_configs(tmp_path)
    (tmp_path / "a.yaml").write_text("name: same")
    (tmp_path / "b.yaml").write_text("name: same")
    with pytest.raises(SamplingConfigError, match="duplicate sampling config name 'same'"):
        load_sampling_configs(tmp_path)
