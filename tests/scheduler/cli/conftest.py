"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a command: a fresh database and an empty config file."""
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {"SCHEDULER_DATABASE_URL": database_url, "SCHEDULER_CONFIG": str(config)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
