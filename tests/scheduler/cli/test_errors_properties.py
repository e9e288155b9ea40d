"""Properties of the error boundary over generated input: an importer file or a config value
ends in a successful command or in one line with exit code 2, never a traceback (or exit 70),
and a refused import writes nothing."""

from __future__ import annotations

import json
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oracle import db
from oracle.errors import InputError
from oracle.importers import base as importer_base
from scheduler.cli import boundary
from scheduler.cli.main import app
from scheduler.config import Settings, load_settings
from tests.oracle.importers.helpers import row_counts

COLUMN_SETS = [
    ["timestamp", "availability_zone", "instance_type", "product_description", "spot_price"],
    ["az_id", "instance_type", "spot_price", "timestamp"],
    ["timestamp", "instance", "price_usd"],
]
timestamps = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.builds(
        lambda moment, hours: moment.isoformat() + f"{hours:+03d}:00",
        st.datetimes(),
        st.integers(-23, 23),
    ),
    st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "2021-13-01"]),
)
prices = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "1e999", "-0.5", "", "cheap", "9" * 400]),
)
fields = st.one_of(
    timestamps,
    prices,
    st.sampled_from(
        ["us-east-1a", "use1-az4", "xx-east-1a", "g5.xlarge", "a big GPU", "Linux/UNIX"]
    ),
    st.text(max_size=30),
    st.just("x" * 140_000),
)


good_moments = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(datetime.isoformat)
good_prices = st.decimals(min_value=0, max_value=50, places=4).map(str)
good_types = st.sampled_from(["g5.xlarge", "p5.48xlarge", "g4dn.xlarge"])
#: A valid row of each column set: most files mix them with bad rows, some hold only these.
GOOD_ROWS = [
    st.tuples(
        good_moments, st.sampled_from(["us-east-1a", "us-west-2b"]), good_types,
        st.just("Linux/UNIX"), good_prices,
    ),
    st.tuples(st.sampled_from(["use1-az4", "usw2-az1"]), good_types, good_prices, good_moments),
    st.tuples(good_moments, good_types, good_prices),
]  # fmt: skip


@st.composite
def importer_files(draw: st.DrawFn) -> str:
    """A delimited file: a recognised header, then rows of valid and invalid fields (some
    rows short or long), or JSON of any shape."""
    if draw(st.integers(0, 9)) == 0:
        payload = draw(
            st.recursive(
                st.none() | st.booleans() | st.floats() | st.text(max_size=10),
                lambda children: (
                    st.lists(children, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(["SpotPriceHistory", "SpotPrice", "x"]), children
                    )
                ),
                max_leaves=20,
            )
        )
        return json.dumps(payload)
    kind = draw(st.integers(0, len(COLUMN_SETS) - 1))
    columns = COLUMN_SETS[kind]
    delimiter = draw(st.sampled_from([",", "\t"]))
    width = st.integers(len(columns) - 1, len(columns) + 1)
    bad = width.flatmap(lambda n: st.lists(fields, min_size=n, max_size=n))
    good = GOOD_ROWS[kind].map(list)
    only_good = draw(st.booleans())
    rows = draw(
        st.lists(good, min_size=1, max_size=8) if only_good else st.lists(good | bad, max_size=8)
    )
    lines = [delimiter.join(columns)] + [delimiter.join(row) for row in rows]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("backend", ["sqlite"])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=importer_files())
def test_an_import_succeeds_whole_or_fails_in_one_line_writing_nothing(
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: str,
) -> None:
    # Tiny chunks: a refused file has usually written some before its bad row.
    monkeypatch.setattr(importer_base, "CHUNK_ROWS", 2)
    engine = db.make_engine(cli_env["SCHEDULER_DATABASE_URL"])
    before = row_counts(engine)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "input"
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
        capsys.readouterr()
        code = boundary.run(app, ["oracle", "import", "--format", "json", str(path)])
    out, err = capsys.readouterr()
    after = row_counts(engine)
    engine.dispose()

    assert "Traceback" not in err
    event("imported" if code == 0 else "refused: " + " ".join(err.split(": ")[2:3])[:70])
    if code == 0:
        [result] = json.loads(out)
        written = sum(after.values()) - sum(before.values())
        assert written == sum(result["rows_inserted"].values()) + 1  # + its ingest run
    else:
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), err
        assert after == before


KEYS = [
    ("planner", "budget_usd_per_hour"),
    ("planner", "headroom_fraction"),
    ("planner", "min_placement_score"),
    ("planner", "hedge"),
    ("jobs", "jitter_s"),
    ("bench", "max_error_rate"),
    ("service", "port"),
    ("oracle", "regions"),
    ("database", "url"),
    ("planner", "no_such_key"),
]
toml_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=20).map(json.dumps),
    st.booleans().map(lambda value: str(value).lower()),
    st.lists(st.integers(-5, 5), max_size=3).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e999", "'unterminated", "{ a = 1 }"]),
)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.tuples(st.sampled_from(KEYS), toml_values), min_size=1, max_size=3))
def test_a_config_value_loads_finite_or_is_refused_in_one_line(
    entries: list[tuple[tuple[str, str], str]],
) -> None:
    sections: dict[str, dict[str, str]] = {}
    for (section, key), value in entries:
        sections.setdefault(section, {})[key] = value
    text = "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
        for section, keys in sections.items()
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.toml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            loaded = load_settings(path)
        except InputError as error:
            assert "\n" not in str(error) and str(error).startswith(str(path))
            return
    assert isinstance(loaded, Settings)
    assert all(math.isfinite(number) for number in _floats(loaded.model_dump()))


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [number for item in value.values() for number in _floats(item)]
    if isinstance(value, list):
        return [number for item in value for number in _floats(item)]
    return []
