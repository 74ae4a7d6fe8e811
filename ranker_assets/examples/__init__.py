"""Example logs of rankers other than closeup, for trying the bring-your-own-logs contract."""
