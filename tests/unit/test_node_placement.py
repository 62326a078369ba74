"""Routes per node over every supervisor on one Redis, and one unique id per node
(:mod:`enrgdaq.control.placement`), on a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from enrgdaq.control.keys import Keys
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.placement import HELD_REASON, NodePlacement, collisions
from enrgdaq.control.reconcile import routes_of, stores_not_running
from enrgdaq.control.registry import JobRecord, JobRegistry
from tests.harness.redis_proc import RedisProcess


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registries(redis_proc: RedisProcess) -> Iterator[dict[str, JobRegistry]]:
    """Supervisors ``a``, ``b``, ``c`` and ``d``, registered (as nodes) on one Redis."""
    client = redis_proc.client()
    for sid in "abcd":
        client.set(Keys(sid).supervisor, "{}")
    yield {sid: JobRegistry(client, sid) for sid in "abcd"}
    client.close()


def add(registry: JobRegistry, uid: str, store: bool = True, node: str | None = None) -> None:
    config = 'daq_job_type = "DAQJobStoreCSV"\n' + (f'node = "{node}"\n' if node else "")
    registry.register(
        JobRecord(
            unique_id=uid,
            daq_job_type="DAQJobStoreCSV" if store else "DAQJobTest",
            config=config,
            is_store=store,
        )
    )


def set_state(registry: JobRegistry, uid: str, state: JobState) -> None:
    registry.redis.hset(registry.keys.job(uid), "state", state.value)


def placement(registry: JobRegistry, clock: Clock) -> NodePlacement:
    return NodePlacement(registry, refresh_seconds=1.0, clock=clock)


def routes_here(p: NodePlacement) -> dict[str, list[str]]:
    own = p.registry.all()
    p.after_tick(own)
    return routes_of(p.routed(own))


def test_a_node_routes_its_own_stores_and_the_stores_pinned_to_it_not_its_own_pinned_elsewhere(
    registries: dict[str, JobRegistry],
) -> None:
    a, b = registries["a"], registries["b"]
    clock = Clock()
    add(a, "store_a")
    add(a, "store_b", node="b")
    add(a, "producer_b", store=False, node="b")
    add(b, "own_b")
    add(b, "store_self", node="b")  # pinned to its own node: as if not pinned
    pa, pb = placement(a, clock), placement(b, clock)

    assert routes_here(pa) == {"DAQJobStoreCSV": ["store_a"]}
    assert sorted(routes_here(pb)["DAQJobStoreCSV"]) == ["own_b", "store_b", "store_self"]

    # The pinned store's state is read every tick (not only at the refresh, once a second);
    # running means a run holds its lease (its supervisor may be lost and not see it die).
    set_state(a, "store_b", JobState.RUNNING)
    own = b.all()
    pb.after_tick(own)
    assert "store_b" in stores_not_running(pb.routed(own))
    a.redis.set(a.keys.lease("store_b"), "task-1")
    pb.after_tick(own)
    assert "store_b" not in stores_not_running(pb.routed(own))


def test_other_supervisors_are_read_at_most_once_per_refresh_interval(
    registries: dict[str, JobRegistry],
) -> None:
    a, b = registries["a"], registries["b"]
    clock = Clock()
    pb = placement(b, clock)
    assert routes_here(pb) == {}
    add(a, "store_b", node="b")
    clock.now += 0.5
    assert routes_here(pb) == {}  # not read again yet
    clock.now += 0.6
    assert routes_here(pb) == {"DAQJobStoreCSV": ["store_b"]}


def test_the_nodes_own_job_keeps_its_unique_id_and_the_pinned_one_is_held_until_it_is_free(
    registries: dict[str, JobRegistry],
) -> None:
    a, b = registries["a"], registries["b"]
    clock = Clock()
    add(b, "store_csv")
    add(a, "store_csv", node="b")
    set_state(a, "store_csv", JobState.RUNNING)  # it was there first: it is stopped all the same
    pa, pb = placement(a, clock), placement(b, clock)

    assert routes_here(pb) == {"DAQJobStoreCSV": ["store_csv"]}
    [routed] = pb.routed(b.all())
    assert routed.config == b.all()[0].config  # B's own
    routes_here(pa)
    held = a.get("store_csv")
    assert held is not None and (held.desired, held.state) == ("stop", JobState.RUNNING)  # stopping
    assert held.stop_reason.startswith(HELD_REASON)
    assert "already used on node 'b' by that node's own job" in held.error
    assert "store_csv" not in a.pending_restarts()

    # A person starts it: held again before the reconcile pass can dispatch it.
    set_state(a, "store_csv", JobState.STOPPED)
    a.request_start("store_csv")
    pa.before_dispatch()
    again = a.get("store_csv")
    assert again is not None and (again.desired, again.state) == ("stop", JobState.STOPPED)
    assert "store_csv" not in a.pending_restarts()

    # B's own job goes (its file removed): the pinned one starts again, and is routed on B.
    b.forget("store_csv")
    clock.now += 1.1
    routes_here(pa)
    released = a.get("store_csv")
    assert released is not None and (released.desired, released.state, released.error) == (
        "run",
        JobState.REGISTERED,
        "",
    )
    assert "store_csv" in a.pending_restarts()
    assert routes_here(pb) == {"DAQJobStoreCSV": ["store_csv"]}


def test_a_person_s_stop_of_a_held_job_is_never_undone(registries: dict[str, JobRegistry]) -> None:
    a, b = registries["a"], registries["b"]
    clock = Clock()
    add(b, "x")
    add(a, "x", node="b")
    pa = placement(a, clock)
    routes_here(pa)
    a.request_stop("x", "stopped by a person")
    b.forget("x")
    clock.now += 1.1
    routes_here(pa)
    record = a.get("x")
    assert record is not None and (record.desired, record.stop_reason) == ("stop", "stopped by a person")


def test_between_pinned_jobs_the_supervisor_whose_id_sorts_first_keeps_the_id(
    registries: dict[str, JobRegistry],
) -> None:
    c, d, b = registries["c"], registries["d"], registries["b"]
    clock = Clock()
    add(d, "x", node="b")
    add(c, "x", node="b")
    pc, pd, pb = placement(c, clock), placement(d, clock), placement(b, clock)
    assert routes_here(pb) == {"DAQJobStoreCSV": ["x"]}
    assert [r.config for r in pb.routed(b.all())] == [c.all()[0].config]
    routes_here(pc)
    routes_here(pd)
    kept, held = c.get("x"), d.get("x")
    assert kept is not None and kept.desired == "run"
    assert held is not None and held.desired == "stop"
    assert "by a job pinned there by supervisor 'c'" in held.error


def test_collisions_rule() -> None:
    def job(uid: str, removed: bool = False) -> JobRecord:
        return JobRecord(unique_id=uid, removed=removed)

    claims = [
        ("z", job("x")),
        ("n", job("x")),
        ("a", job("x")),
        ("a", job("y")),
        ("z", job("y", removed=True)),
    ]
    assert collisions(claims, "n") == {("z", "x"): "n", ("a", "x"): "n"}
    assert collisions(claims, "m") == {("n", "x"): "a", ("z", "x"): "a"}


def test_the_nodes_own_job_waits_while_a_run_of_a_pinned_job_with_its_id_is_still_there(
    registries: dict[str, JobRegistry],
) -> None:
    a, b = registries["a"], registries["b"]
    clock = Clock()
    add(a, "x", node="b")
    set_state(a, "x", JobState.RUNNING)
    b.redis.set(a.keys.lease("x"), "task-1")  # its run is alive
    pb = placement(b, clock)
    routes_here(pb)
    add(b, "x")  # B's own, due now
    now = time.time()
    pb.before_dispatch(now)
    assert b.pending_restarts()["x"] > now  # put off: not dispatched beside the pinned run

    b.redis.delete(a.keys.lease("x"))  # that run ended (its supervisor stopped it)
    later = now + 1.0
    pb.before_dispatch(later)
    assert b.pending_restarts()["x"] <= later  # due: dispatched by this tick's reconcile pass
