"""Dagster's wiring in one place: assets, partitions, freshness cadence, automation and the
sensors that keep runs honest; the work itself lives in the stage packages."""
