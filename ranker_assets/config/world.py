"""The world simulator's section: size and dynamics of the embedded default data source."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
)

from ranker_assets.config.base import Strict


class WorldConfig(Strict):
    """Size and dynamics of the closeup world simulator (the embedded default data source)."""

    origin: str = "2026-01-01"
    n_users: int = Field(50_000, gt=0)
    n_pins: int = Field(200_000, gt=0)
    n_topics: int = Field(32, ge=2)
    embedding_dim: int = Field(16, ge=2)
    candidates_per_request: int = Field(50, ge=2)
    same_topic_share: float = Field(0.7, ge=0.0, le=1.0)
    mean_impressed: float = Field(8.0, gt=1.0)
    topic_drift: float = Field(0.15, ge=0.0)
    interest_drift: float = Field(0.10, ge=0.0)
    # The living catalogue (docs/world.md says where each default comes from). A pin's exposure
    # halves every `exposure_half_life_days`: Piqora (2013) measured a Pinterest pin's half-life
    # at about 3.5 months (vs minutes for a tweet). A catalogue of constant active size then
    # renews ln 2 / 105 = 0.66% a day: that many pins are born daily and the oldest retire.
    exposure_half_life_days: float = Field(105.0, gt=0.0)
    new_pin_share_per_day: float = Field(0.0066, ge=0.0, le=0.5)  # 0: a static catalogue
    # Novelty: a new pin's engagement logit rises over `rise_days` and its extra appeal halves
    # daily: BoardBooster (2016) found viral pins get half their repins on day one, 90% in four.
    # The size of the boost is our assumption.
    novelty_logit: float = Field(1.0, ge=0.0)
    novelty_half_life_days: float = Field(1.0, gt=0.0)
    rise_days: float = Field(1.0, gt=0.0)
    # Trends (our assumption): topics start trending at this rate, peak at +trend_logit halfway
    # through `trend_days`, then fade; and each topic has its own weekday rhythm.
    trend_rate_per_day: float = Field(0.25, ge=0.0)
    trend_logit: float = Field(0.8, ge=0.0)
    trend_days: int = Field(14, ge=1, le=90)
    weekly_logit: float = Field(0.1, ge=0.0)
    # Recent actions (our assumption): an average user engages this often a day, and a history
    # reaches back at most this far; the logger keeps the last `logging.sequence_length`.
    actions_per_day: float = Field(20.0, gt=0.0)
    history_days: float = Field(7.0, gt=0.0)
    # Days simulated in one run carry each user's real engagements forward into later days'
    # sequences (the feedback of what was served); off: every day's are drawn as if alone.
    sequence_history: bool = True
    late_report_share: float = Field(0.01, ge=0.0, le=1.0)
    # Real clients retry (duplicate events) and send broken rows; ingestion must cope.
    client_fault_share: float = Field(0.002, ge=0.0, le=0.5)

    @field_validator("origin")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        from datetime import date

        date.fromisoformat(v)
        return v
