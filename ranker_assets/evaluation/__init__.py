"""Offline evaluation: metrics that tell how good a ranker is (and how far from the oracle)."""
