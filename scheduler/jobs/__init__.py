"""Scheduled jobs (APScheduler 3), one module per job; ``scheduler worker`` runs them.

Each job is a short function that opens its own sessions and calls one service. Jobs find
their engine, settings and AWS clients in the :mod:`scheduler.jobs.context` the worker sets up.
"""
