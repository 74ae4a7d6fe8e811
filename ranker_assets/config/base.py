"""What every config section shares: strict models, where the repo and RANKER_HOME are, and
error messages that name each failing field."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]


class Strict(BaseModel):
    """Unknown keys are errors (a typo never silently falls back to a default); frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_errors(err: ValidationError) -> str:
    """`a.b: message; c: message`: each failing field of a config by its dotted path."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or '<config>'}: {e['msg']}" for e in err.errors()
    )


def ranker_home() -> Path:
    """Where everything the project writes lives: `$RANKER_HOME`, default `.ranker/` in the repo."""
    return Path(os.environ.get("RANKER_HOME") or REPO_ROOT / ".ranker").resolve()
