"""Alembic migrations of the scheduler database (timestamped; never edit a released one)."""
