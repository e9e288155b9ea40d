"""The apply lock is a database lock: two processes never apply to one service at once."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from scheduler.actuator.apply_lock import apply_lock
from tests.scheduler.hold_apply_lock import apply_lock_held_elsewhere


def test_a_lock_held_by_another_process_is_refused_until_released(
    database_url: str, engine: Engine
) -> None:
    with apply_lock_held_elsewhere(database_url, "llm-a"):
        mine = apply_lock(engine, "llm-a")
        assert mine.try_acquire() is False
        # Another service's applies are independent.
        other = apply_lock(engine, "llm-b")
        assert other.try_acquire() is True
        other.release()
    mine = apply_lock(engine, "llm-a")
    assert mine.try_acquire() is True
    # Not reentrant: a second holder in the same process is refused like another process.
    assert apply_lock(engine, "llm-a").try_acquire() is False
    mine.release()
    again = apply_lock(engine, "llm-a")
    assert again.try_acquire() is True
    again.release()
