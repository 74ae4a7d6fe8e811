"""Logs in: the log contract, the hybrid logger, landing files, and ingestion (screening,
quarantine, commit) of what landed, in process or on Spark."""
