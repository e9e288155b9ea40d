"""Replica states: one enum, stored as the same strings, with checked transitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from oracle.db import transaction
from scheduler.actuator import journal
from scheduler.models import (
    FINAL_STATES,
    LIVE_STATES,
    TRANSITIONS,
    IllegalTransitionError,
    ReplicaModel,
    ReplicaState,
    check_transition,
)

#: The strings the replicas table held before the enum (no migration: the values are these).
STORED_STRINGS = (
    "PENDING",
    "PROVISIONING",
    "STARTING",
    "READY",
    "NOT_READY",
    "TERMINATING",
    "TERMINATED",
    "PREEMPTED",
    "FAILED",
)
ALLOWED = [(old, new) for old, targets in TRANSITIONS.items() for new in sorted(targets)]
STATES = st.sampled_from(list(ReplicaState))


def test_the_states_are_stored_as_the_same_strings() -> None:
    assert [state.value for state in ReplicaState] == list(STORED_STRINGS)
    assert all(ReplicaState(text) == text for text in STORED_STRINGS)
    assert set(TRANSITIONS) == set(ReplicaState)


@pytest.mark.parametrize(("old", "new"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_every_allowed_transition_is_taken(old: ReplicaState, new: ReplicaState) -> None:
    replica = ReplicaModel(state=old.value, state_reason="")
    replica.move_to(new, reason="why")
    assert replica.state == new and replica.state_reason == "why"
    assert type(replica.state) is str  # the column holds the plain string


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("TERMINATED", "READY"),  # a final state never comes back
        ("PREEMPTED", "TERMINATING"),
        ("FAILED", "PROVISIONING"),
        ("PENDING", "READY"),  # not before EC2 accepted the launch
        ("TERMINATING", "READY"),  # a retire is not undone
        ("READY", "PENDING"),
        ("STARTING", "NOT_READY"),  # never ready, so not "no longer ready"
    ],
)
def test_a_refused_transition_names_both_states(old: str, new: str) -> None:
    replica = ReplicaModel(state=old, state_reason="before")
    with pytest.raises(IllegalTransitionError, match=f"{old} -> {new} is not allowed"):
        replica.move_to(new, reason="after")
    assert replica.state == old and replica.state_reason == "before"


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(IllegalTransitionError, match="not a replica state"):
        check_transition("READY", "RUNNING")


@given(old=STATES, new=STATES)
def test_a_transition_is_allowed_exactly_when_the_table_says(
    old: ReplicaState, new: ReplicaState
) -> None:
    if new == old or new in TRANSITIONS[old]:
        assert check_transition(old, new) == new
    else:
        with pytest.raises(IllegalTransitionError):
            check_transition(old, new)


def test_the_graph_has_no_dead_ends() -> None:
    """Finals lead nowhere; every state is reachable from PENDING, and from every state that is
    not final a final one can be reached."""
    assert all(not TRANSITIONS[state] for state in FINAL_STATES)
    assert set(LIVE_STATES).isdisjoint(FINAL_STATES)
    reached, frontier = {ReplicaState.PENDING}, [ReplicaState.PENDING]
    while frontier:
        for new in TRANSITIONS[frontier.pop()] - reached:
            reached.add(new)
            frontier.append(new)
    assert reached == set(ReplicaState)
    for state in set(ReplicaState) - set(FINAL_STATES):
        seen, todo = {state}, [state]
        while todo:
            for new in TRANSITIONS[todo.pop()] - seen:
                seen.add(new)
                todo.append(new)
        assert seen & set(FINAL_STATES), state


def test_a_refused_write_leaves_the_row_as_it_was(engine: Engine) -> None:
    with transaction(engine) as session:
        replica = ReplicaModel(
            service="s",
            region="us-east-1",
            zone="use1-az1",
            instance_type="g5.xlarge",
            market="spot",
            state=ReplicaState.TERMINATED,
            client_token="t",
            created_at=datetime(2026, 12, 6, tzinfo=UTC),
        )
        session.add(replica)
        session.flush()
        replica_id = replica.id
    with pytest.raises(IllegalTransitionError):
        journal.set_replica(engine, replica_id, state=ReplicaState.READY, endpoint="http://x")
    with transaction(engine) as session:
        row = session.execute(
            sa.select(ReplicaModel.state, ReplicaModel.endpoint).where(
                ReplicaModel.id == replica_id
            )
        ).one()
    assert tuple(row) == ("TERMINATED", None)
