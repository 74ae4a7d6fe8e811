"""Entry points: the `ranker-assets` CLI, `make demo`, backfills, and a local Dagster instance."""
