"""Deployment: the deploy gate's decision and its ledger, rollback, and the champion serving
the simulated world (the closed loop)."""
