"""SkyPilot availability traces imported as pool observations, on the real files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.errors import InputError
from oracle.importers import import_files
from oracle.models import PoolObservationModel
from oracle.observations import pool_risk

TRACES = "skypilot-spot-traces/availability/1-node/aws-02-15-2023"
#: WORLD.md: share of probes available and losses per day, per AZ.
WORLD = {
    "us-east-1a": (0.167, 5.56),
    "us-east-1c": (0.467, 7.54),
    "us-east-1d": (0.447, 6.44),
    "us-east-1f": (0.591, 6.26),
    "us-east-2a": (0.759, 3.19),
    "us-east-2b": (0.682, 3.82),
    "us-west-2a": (0.883, 3.47),
    "us-west-2b": (0.905, 2.07),
    "us-west-2c": (0.891, 3.12),
}


def test_real_traces_give_the_world_figures_and_reimport_adds_nothing(
    engine: Engine, shared_data: Path
) -> None:
    paths = sorted((shared_data / TRACES).glob("*.json"))
    results = import_files(engine, paths)
    assert [r.kind for r in results] == ["pool_observations"] * 9
    assert import_files(engine, paths[:1])[0].rows_inserted == {"pool_observations": 0}

    end = datetime(2023, 4, 3, tzinfo=UTC)
    with transaction(engine) as session:
        risk = pool_risk(session, as_of=end)
        sources = set(session.scalars(sa.select(PoolObservationModel.source).distinct()))
    assert sources == {"file"}
    assert len(risk) == 9
    days = 20158 * 195 / 86_400
    for (region, zone, instance_type, market), estimate in risk.items():
        available, losses_per_day = WORLD[zone]
        assert (region, instance_type, market) == (zone[:-1], "p3.2xlarge", "spot")
        evidence = estimate.evidence
        assert evidence.launches_ok + evidence.launch_failures == 20158
        assert evidence.losses / days == pytest.approx(losses_per_day, abs=0.01)
        assert evidence.exposure_hours == pytest.approx(available * days * 24, rel=0.01)
        # 20,158 probes outweigh the prior's 20 pseudo-launches.
        assert estimate.availability == pytest.approx(available, abs=0.002)
        # The hazard is per hour of held capacity: losses over the available hours.
        mle = evidence.losses / evidence.exposure_hours
        assert estimate.hazard_per_hour == pytest.approx(mle, rel=0.5)
        assert estimate.hazard_per_hour > 50 * estimate.prior.hazard_per_hour


def test_no_look_ahead_inside_a_trace(engine: Engine, shared_data: Path) -> None:
    import_files(engine, [shared_data / TRACES / "us-east-1a_v100_1.json"])
    with transaction(engine) as session:
        day_one = pool_risk(session, as_of=datetime(2023, 2, 16, tzinfo=UTC))
    [estimate] = day_one.values()
    # Probes are stamped at the end of each (at most hour-long) chunk: none from after as_of.
    assert estimate.evidence.launches_ok + estimate.evidence.launch_failures <= 86_400 / 195
    assert estimate.evidence.last_observed_at is not None
    assert estimate.evidence.last_observed_at <= datetime(2023, 2, 16, tzinfo=UTC)


def _write(tmp_path: Path, relative: str, payload: object) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("relative", "payload", "message"),
    [
        (
            "availability/1-node/aws-02-15-2023/us-east-1a_v100_1.json",
            {"metadata": {"gap_seconds": 60}, "data": [1, 1, -1]},
            ":data[2]: -1 is not a count of instances",
        ),
        (
            "availability/1-node/aws-02-15-2023/us-east-1a_v100_1.json",
            {"metadata": {"gap_seconds": 0}, "data": [1]},
            ":metadata.gap_seconds: 0 is not a positive number of seconds",
        ),
        (
            "availability/1-node/aws-02-15-2023/trace.json",
            {"metadata": {"gap_seconds": 60}, "data": [1]},
            ": cannot tell the pool from the file name; name the file as",
        ),
        (
            "somewhere/us-east-1a_v100_1.json",
            {"metadata": {"gap_seconds": 60}, "data": [1]},
            ": cannot tell when the trace starts: give --observed-at",
        ),
        (
            "preemption/1-node/aws-04-22-2023/us-west-2b_v100_1.json",
            {"metadata": {"gap_seconds": 32}, "data": [0, 1]},
            ": this is a spot preemption trace, not price data",
        ),
    ],
)
def test_bad_traces_name_the_file_and_write_nothing(
    engine: Engine, tmp_path: Path, relative: str, payload: object, message: str
) -> None:
    good = _write(tmp_path, "availability/1-node/aws-02-15-2023/us-east-2a_v100_1.json", {
        "metadata": {"gap_seconds": 60}, "data": [1, 0, 1],
    })  # fmt: skip
    bad = _write(tmp_path, relative, payload)
    with pytest.raises(InputError) as raised:
        import_files(engine, [good, bad])
    assert str(raised.value).startswith(f"{bad}{message}")
    with transaction(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(PoolObservationModel)) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_observed_at_gives_the_start_and_runs_become_rows(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "mine/us-west-2a_k80_1.json", {
        "metadata": {"gap_seconds": 600}, "data": [0, 3, 3, 3, 3, 3, 3, 3, 0, 0, 2],
    })  # fmt: skip
    start = datetime(2024, 1, 1, tzinfo=UTC)
    import_files(engine, [path], observed_at=start)
    with transaction(engine) as session:
        rows = session.execute(
            sa.select(
                PoolObservationModel.kind,
                PoolObservationModel.count,
                PoolObservationModel.at_risk_s,
                PoolObservationModel.observed_at,
                PoolObservationModel.instance_type,
            ).order_by(PoolObservationModel.observed_at, PoolObservationModel.kind)
        ).all()
    minutes = [(kind, count, at_risk, int((at - start).total_seconds() // 60), itype)
               for kind, count, at_risk, at, itype in rows]  # fmt: skip
    assert sorted(minutes, key=lambda row: (row[3], row[0])) == [
        ("capacity-error", 1, 0.0, 0, "p2.xlarge"),
        ("launch", 6, 3600.0, 60, "p2.xlarge"),
        ("launch", 1, 600.0, 70, "p2.xlarge"),
        ("interruption", 1, 0.0, 80, "p2.xlarge"),
        ("capacity-error", 2, 0.0, 90, "p2.xlarge"),
        ("launch", 1, 600.0, 100, "p2.xlarge"),
    ]
