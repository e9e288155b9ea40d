"""The names of the policies a backtest compares (what ``--policies`` accepts), apart from the
policies themselves so that the command line can list them without importing the planner."""

from __future__ import annotations

POLICY_NAMES = (
    "planner",
    "planner-nohedge",
    "on-demand",
    "cheapest-zone",
    "spot-hedge",
    "price-capacity",
)
#: The lower bound, computed beside the policies (see :mod:`scheduler.backtest.simulate`).
HINDSIGHT = "hindsight"
