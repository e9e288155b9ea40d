"""The configuration file: defaults documented in config.toml, bad keys refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.config import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_repository_config_holds_exactly_the_defaults() -> None:
    assert load_settings(REPO_ROOT / "config.toml") == Settings()


def test_every_default_key_is_documented_in_config_toml() -> None:
    text = (REPO_ROOT / "config.toml").read_text()

    def keys(model: object, prefix: str = "") -> list[str]:
        out = []
        for name, value in model:  # type: ignore[attr-defined]
            if hasattr(type(value), "model_fields"):
                out += keys(value, f"{prefix}{name}.")
            elif isinstance(value, dict):
                assert f"[{prefix}{name}" in text or f"\n{name} =" in text, name
            else:
                out.append(name)
        return out

    for key in keys(Settings()):
        assert f"\n{key} =" in text, f"{key} is not in config.toml"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[planner]\nhegde = 'az'\n", "unknown key 'planner.hegde'"),
        ("[planner]\nhedge = 'zone'\n", "key 'planner.hedge'"),
        ("[oracle]\nhistory_days = 'ninety'\n", "key 'oracle.history_days'"),
        ("[bench]\nttft_p95_ms = -1.0\n", "key 'bench.ttft_p95_ms'"),
        ("[nonsense]\n", "unknown key 'nonsense'"),
        ("[planner\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(Exception) as caught:
        load_settings(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_environment_chooses_file_and_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "custom.toml"
    path.write_text("[planner]\nhedge = 'region'\n[database]\nurl = 'sqlite:///from-file'\n")
    monkeypatch.setenv("SCHEDULER_CONFIG", str(path))
    settings = load_settings()
    assert settings.planner.hedge == "region"
    assert settings.database.resolved_url() == "sqlite:///from-file"
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", "sqlite:///from-env")
    assert settings.database.resolved_url() == "sqlite:///from-env"
