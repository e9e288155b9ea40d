"""The scheduler: planner, service and the `scheduler` command line, over the oracle."""
