"""The price oracle: the facts store behind the scheduler.

It holds instance types, offerings, spot price history, on-demand prices, placement scores,
interruption frequencies, quotas and benchmark results, each row with its source and the time it
was observed. It imports neither ``bench`` nor ``scheduler``.
"""
