"""The population of the closeup world: users, the catalogue of pins, and the hidden truths.

Users are drawn once from the seed. Pins are born over time: the catalogue keeps the newest
`n_pins` of them, `new_pin_share_per_day` of the catalogue is born each day and as many of the
oldest retire. A pin's attributes depend only on (config, seed, pin id), so the catalogue of any
day is built on its own and agrees with every other day simulated from the same seed. Hidden
quantities (true interest, true quality) only ever reach the pipeline through noisy observed
features, which is what leaves a gap between a learned model and the oracle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ranker_assets.config import WorldConfig
from ranker_assets.world.vocabulary import CONTENT_TYPES, PLATFORMS

N_INTEREST_FACTORS = 4
# Pin attributes are drawn in blocks of consecutive ids, one random stream per block.
PIN_BLOCK = 4096
# A static world (no births) spreads the catalogue's ages like this (days, exponential mean).
STATIC_MEAN_AGE_DAYS = 90.0


@dataclass(frozen=True)
class Catalogue:
    """The live pins of one day, as column arrays indexed by catalogue row."""

    pin_id: np.ndarray  # (P,) int64 global id: birth order, never reused
    pin_topic: np.ndarray  # (P,)
    pin_content_type: np.ndarray  # (P,) index into CONTENT_TYPES
    pin_quality: np.ndarray  # (P,) hidden quality, standard normal
    pin_embedding: np.ndarray  # (P, D) unit vectors clustered by topic
    pin_base_popularity: np.ndarray  # (P,) positive engagement-count scale
    pin_age_days: np.ndarray  # (P,) float32 age on this day (0 = born today)
    topic_order: np.ndarray  # (P,) rows sorted by topic
    topic_offsets: np.ndarray  # (T+1,) start of each topic's block in topic_order
    topic_cum_weight: np.ndarray  # (P,) cumulative exposure weight along topic_order

    @property
    def n_pins(self) -> int:
        return len(self.pin_topic)

    def sample_pins_in_topics(self, topics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one catalogue row per entry of `topics`, proportional to exposure weight within
        the topic (any live pin when a topic has none today)."""
        start, end = self.topic_offsets[topics], self.topic_offsets[topics + 1]
        empty = start == end
        start, end = np.where(empty, 0, start), np.where(empty, self.n_pins, end)
        lo = np.where(start > 0, self.topic_cum_weight[start - 1], 0.0)
        hi = self.topic_cum_weight[end - 1]
        target = lo + rng.random(topics.shape) * (hi - lo)
        idx = np.searchsorted(self.topic_cum_weight, target, side="right")
        return self.topic_order[np.clip(idx, start, end - 1)]


@dataclass(frozen=True)
class Population:
    """Users of the world, and what every pin is drawn from."""

    user_base_logits: np.ndarray  # (U, T) topic interest logits before drift
    user_loadings: np.ndarray  # (U, K) how strongly each user follows each drift factor
    user_activity: np.ndarray  # (U,) heavy-tailed request rate weight
    user_platform: np.ndarray  # (U,) index into PLATFORMS
    user_content_pref: np.ndarray  # (U, len(CONTENT_TYPES)) hidden content-type taste
    topic_sizes: np.ndarray  # (T,) share of new pins per topic
    topic_centroids: np.ndarray  # (T, D) where each topic's pin embeddings cluster
    seed: int
    world: WorldConfig
    # Pin attribute blocks already drawn, by block number: a cache, never part of the state.
    _blocks: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.user_activity)

    def born_by(self, day_index: int) -> int:
        """How many pins have been born by the end of `day_index` (ids 0..born-1)."""
        return self.world.n_pins + math.ceil(day_index * self.pins_per_day - 1e-9)

    @property
    def pins_per_day(self) -> float:
        return self.world.n_pins * self.world.new_pin_share_per_day

    def _birth_day(self, pin_id: np.ndarray, attrs: dict[str, np.ndarray]) -> np.ndarray:
        """The day index each pin was born on (negative: before the world's origin); a static
        catalogue's pins carry their own age at the origin instead."""
        if self.pins_per_day == 0:
            return -attrs["static_age"]
        return np.floor((pin_id - self.world.n_pins) / self.pins_per_day) + 1

    def _block(self, number: int) -> dict[str, np.ndarray]:
        if number not in self._blocks:
            if len(self._blocks) > 4 * (self.world.n_pins // PIN_BLOCK + 2):
                self._blocks.clear()  # bounded: a day needs about n_pins / PIN_BLOCK blocks
            rng = np.random.default_rng([self.seed, 10, number])
            n_t, dim = self.topic_centroids.shape
            topic = rng.choice(n_t, size=PIN_BLOCK, p=self.topic_sizes).astype(np.int32)
            emb = self.topic_centroids[topic] + 0.8 * rng.normal(size=(PIN_BLOCK, dim))
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            quality = rng.normal(size=PIN_BLOCK).astype(np.float32)
            self._blocks[number] = {
                "topic": topic,
                "content_type": rng.choice(
                    len(CONTENT_TYPES), size=PIN_BLOCK, p=[0.6, 0.2, 0.2]
                ).astype(np.int8),
                "quality": quality,
                "embedding": emb.astype(np.float32),
                "popularity": np.exp(0.8 * quality + rng.normal(size=PIN_BLOCK)),
                "static_age": rng.exponential(STATIC_MEAN_AGE_DAYS, size=PIN_BLOCK),
            }
        return self._blocks[number]

    def _attributes(self, pin_id: np.ndarray) -> dict[str, np.ndarray]:
        blocks = pin_id // PIN_BLOCK
        first, last = int(blocks.min()), int(blocks.max())
        parts = [self._block(b) for b in range(first, last + 1)]
        offset = pin_id - first * PIN_BLOCK
        return {k: np.concatenate([p[k] for p in parts])[offset] for k in parts[0]}

    def catalogue(
        self, day_index: int, exposure: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> Catalogue:
        """The live pins on `day_index`: the newest `n_pins` born by then. Candidate generation
        draws them in proportion to base popularity times `exposure(age)` (1 when None)."""
        born = self.born_by(day_index)
        pin_id = np.arange(born - self.world.n_pins, born, dtype=np.int64)
        attrs = self._attributes(pin_id)
        age = (day_index - self._birth_day(pin_id, attrs)).astype(np.float32)
        topic = attrs["topic"]
        weight = attrs["popularity"] * (1.0 if exposure is None else exposure(age))
        order = np.argsort(topic, kind="stable")
        return Catalogue(
            pin_id=pin_id,
            pin_topic=topic,
            pin_content_type=attrs["content_type"],
            pin_quality=attrs["quality"],
            pin_embedding=attrs["embedding"],
            pin_base_popularity=attrs["popularity"],
            pin_age_days=age,
            topic_order=order,
            topic_offsets=np.searchsorted(topic[order], np.arange(len(self.topic_sizes) + 1)),
            topic_cum_weight=np.cumsum(weight[order]),
        )


def build_population(cfg: WorldConfig, seed: int) -> Population:
    """Draw the world's users and topics; the same (config, seed) always gives the same world."""
    rng = np.random.default_rng([seed, 0])
    n_u, n_t, dim = cfg.n_users, cfg.n_topics, cfg.embedding_dim
    return Population(
        user_base_logits=rng.normal(0.0, 1.5, size=(n_u, n_t)).astype(np.float32),
        user_loadings=rng.normal(0.0, 1.0, size=(n_u, N_INTEREST_FACTORS)).astype(np.float32),
        user_activity=(rng.pareto(1.5, size=n_u) + 1.0),
        user_platform=rng.choice(len(PLATFORMS), size=n_u, p=[0.45, 0.40, 0.15]).astype(np.int8),
        user_content_pref=rng.normal(0.0, 0.6, size=(n_u, len(CONTENT_TYPES))).astype(np.float32),
        topic_sizes=rng.dirichlet(np.full(n_t, 2.0)),
        topic_centroids=rng.normal(size=(n_t, dim)),
        seed=seed,
        world=cfg,
    )
