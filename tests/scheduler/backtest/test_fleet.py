"""The simulated fleet: start-up, make-before-break, drains and interruption notices."""

from __future__ import annotations

from scheduler.backtest.fleet import Fleet
from scheduler.planning.model import PoolKey

A = PoolKey("us-east-1", "use1-az1", "g5.xlarge", "spot")
B = PoolKey("us-east-1", "use1-az2", "g5.xlarge", "spot")
GOODPUT = {"g5.xlarge": 1000.0}


def test_new_instances_are_billed_but_serve_only_after_start_up() -> None:
    fleet = Fleet(startup_s=600.0, drain_s=30.0)
    fleet.set_target({A: 2}, GOODPUT, 0.0)
    assert fleet.capacity_at(599.0) == 0.0
    assert fleet.capacity_at(600.0) == 2000.0
    assert fleet.launches == 2
    assert all(i.launched_s == 0.0 for i in fleet.instances)


def test_moving_pools_keeps_the_old_ones_until_the_new_ones_serve() -> None:
    fleet = Fleet(startup_s=600.0, drain_s=30.0)
    fleet.set_target({A: 1}, GOODPUT, 0.0)
    fleet.advance(900.0)
    fleet.set_target({B: 1}, GOODPUT, 900.0)
    old = fleet.instances[0]
    assert old.retiring and fleet.capacity_at(1000.0) == 1000.0
    fleet.advance(1800.0)
    # Drained when the replacement was ready (900 + 600), billed drain_s longer.
    assert old.stop_serving_s == 1500.0
    assert old.end_s == 1530.0
    assert fleet.capacity_at(1499.0) == 1000.0 and fleet.capacity_at(1500.0) == 1000.0


def test_a_starting_instance_that_is_not_wanted_is_cancelled_at_once() -> None:
    fleet = Fleet(startup_s=600.0, drain_s=30.0)
    fleet.set_target({A: 2}, GOODPUT, 0.0)
    fleet.set_target({A: 1}, GOODPUT, 300.0)
    ended = [i for i in fleet.instances if i.end_s == 300.0]
    assert len(ended) == 1 and ended[0].stop_serving_s == 300.0


def test_an_interrupted_pool_stops_serving_at_the_notice_and_is_billed_two_minutes() -> None:
    fleet = Fleet(startup_s=600.0, drain_s=30.0)
    fleet.set_target({A: 2, B: 1}, GOODPUT, 0.0)
    assert fleet.interrupt(A, 5000.0) == 2
    assert fleet.capacity_at(4999.0) == 3000.0
    # Out of the load balancer at the warning, as the service's handler does.
    assert fleet.capacity_at(5000.0) == 1000.0
    assert all(i.end_s == 5120.0 for i in fleet.instances if i.pool == A)
    assert fleet.counts() == {B: 1}
    assert fleet.interruptions == 2
