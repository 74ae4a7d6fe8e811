"""Storage and compute every stage shares: Delta tables (the lake), the Spark session, and
child processes that a crash cannot orphan."""
