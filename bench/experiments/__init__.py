"""Experiments against the simulator's ground truth: what a logging, sampling, refresh or
training choice buys, with every arm built from the same seeds and days.

Each arm goes through the real stages as plain functions (simulation and landing, validated
ingestion, the Spark Joiner and Sampler into Delta tables, the trainer), without Dagster or
MLflow, so an experiment is a loop over arms. Models are judged on days served in uniform
random order (free of position bias, with the true engagement probabilities: the oracle), and
online by serving a simulated day with them. `bench/bench_experiments.py` runs them at full
scale; the tests run them small and assert the direction of each effect.
"""
