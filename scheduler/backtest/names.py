"""The names of the policies a backtest compares (what ``--policies`` and
``backtest.policies`` accept), apart from the policies themselves so that the configuration and
the command line can name them without importing the planner."""

from __future__ import annotations

from typing import Literal, get_args

PolicyName = Literal[
    "planner",
    "planner-nohedge",
    "on-demand",
    "cheapest-zone",
    "spot-hedge",
    "price-capacity",
]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)
#: The lower bound, computed beside the policies (see :mod:`scheduler.backtest.simulate`).
HINDSIGHT = "hindsight"
