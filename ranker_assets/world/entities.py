"""The static population of the closeup world: users, pins and the hidden truths about them.

Everything here is drawn once from the seed; what changes from day to day lives in `drift`.
Hidden quantities (true interest, true quality) are only ever exposed to the pipeline through
noisy observed features, which is what leaves a gap between a learned model and the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranker_assets.config import WorldConfig
from ranker_assets.world.vocabulary import CONTENT_TYPES, PLATFORMS

N_INTEREST_FACTORS = 4


@dataclass(frozen=True)
class Population:
    """Users and pins of the world, as column arrays indexed by id."""

    user_base_logits: np.ndarray  # (U, T) topic interest logits before drift
    user_loadings: np.ndarray  # (U, K) how strongly each user follows each drift factor
    user_activity: np.ndarray  # (U,) heavy-tailed request rate weight
    user_platform: np.ndarray  # (U,) index into PLATFORMS
    user_content_pref: np.ndarray  # (U, len(CONTENT_TYPES)) hidden content-type taste
    pin_topic: np.ndarray  # (P,)
    pin_content_type: np.ndarray  # (P,) index into CONTENT_TYPES
    pin_quality: np.ndarray  # (P,) hidden quality, standard normal
    pin_embedding: np.ndarray  # (P, D) unit vectors clustered by topic
    pin_base_popularity: np.ndarray  # (P,) positive engagement-count scale
    pin_age_days: np.ndarray  # (P,) age at the world's origin
    topic_order: np.ndarray  # (P,) pin ids sorted by topic
    topic_offsets: np.ndarray  # (T+1,) start of each topic's block in topic_order
    topic_cum_weight: np.ndarray  # (P,) cumulative popularity along topic_order

    @property
    def n_users(self) -> int:
        return len(self.user_activity)

    @property
    def n_pins(self) -> int:
        return len(self.pin_topic)

    def sample_pins_in_topics(self, topics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one pin per entry of `topics`, proportional to popularity within the topic."""
        lo = np.where(
            self.topic_offsets[topics] > 0,
            self.topic_cum_weight[self.topic_offsets[topics] - 1],
            0.0,
        )
        hi = self.topic_cum_weight[self.topic_offsets[topics + 1] - 1]
        target = lo + rng.random(topics.shape) * (hi - lo)
        idx = np.searchsorted(self.topic_cum_weight, target, side="right")
        idx = np.clip(idx, self.topic_offsets[topics], self.topic_offsets[topics + 1] - 1)
        return self.topic_order[idx]


def build_population(cfg: WorldConfig, seed: int) -> Population:
    """Draw the world's users and pins; the same (config, seed) always gives the same world."""
    rng = np.random.default_rng([seed, 0])
    n_u, n_p, n_t, dim = cfg.n_users, cfg.n_pins, cfg.n_topics, cfg.embedding_dim
    topic_sizes = rng.dirichlet(np.full(n_t, 2.0))
    pin_topic = rng.choice(n_t, size=n_p, p=topic_sizes).astype(np.int32)
    # Every topic needs at least one pin so that candidate generation never samples an empty block.
    pin_topic[:n_t] = np.arange(n_t, dtype=np.int32)
    centroids = rng.normal(size=(n_t, dim))
    emb = centroids[pin_topic] + 0.8 * rng.normal(size=(n_p, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    quality = rng.normal(size=n_p).astype(np.float32)
    popularity = np.exp(0.8 * quality + rng.normal(size=n_p)).astype(np.float64)
    order = np.argsort(pin_topic, kind="stable")
    offsets = np.searchsorted(pin_topic[order], np.arange(n_t + 1))
    return Population(
        user_base_logits=rng.normal(0.0, 1.5, size=(n_u, n_t)).astype(np.float32),
        user_loadings=rng.normal(0.0, 1.0, size=(n_u, N_INTEREST_FACTORS)).astype(np.float32),
        user_activity=(rng.pareto(1.5, size=n_u) + 1.0),
        user_platform=rng.choice(len(PLATFORMS), size=n_u, p=[0.45, 0.40, 0.15]).astype(np.int8),
        user_content_pref=rng.normal(0.0, 0.6, size=(n_u, len(CONTENT_TYPES))).astype(np.float32),
        pin_topic=pin_topic,
        pin_content_type=rng.choice(len(CONTENT_TYPES), size=n_p, p=[0.6, 0.2, 0.2]).astype(
            np.int8
        ),
        pin_quality=quality,
        pin_embedding=emb.astype(np.float32),
        pin_base_popularity=popularity,
        pin_age_days=rng.exponential(90.0, size=n_p).astype(np.float32),
        topic_order=order,
        topic_offsets=offsets,
        topic_cum_weight=np.cumsum(popularity[order]),
    )
