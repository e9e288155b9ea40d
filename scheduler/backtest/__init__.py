"""Backtesting: replay the oracle's history tick by tick, with no look-ahead, and compare what
each scheduling policy would have cost and how often it would have missed the SLO."""
