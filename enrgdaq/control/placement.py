"""Which jobs run on which node, over every supervisor on one Redis: a node's routes, and one
unique id per node.

A job runs on the node its TOML pins it to (``node = "daq-02"``), else on the node of the
supervisor that registered it (:func:`enrgdaq.control.queues.job_node`). So the stores and
bridges a node's producers must write for are the node's own jobs that are not pinned
elsewhere, plus the jobs other supervisors pinned to it: :meth:`NodePlacement.routed`.

Rings and ring consumers are named by unique id within a node's ring directory, so two jobs
that run on one node must not share one (a second store with the same id would read the first
one's cursor). The rule (:func:`collisions`): the node's own job keeps the id; among jobs
pinned there by other supervisors, the one of the supervisor whose id sorts first. Every other
claimant is neither routed on that node nor run: its own supervisor stops it, with the reason
as the job's error (``enrgdaq status``), and starts it again once the id is free there.

Cost: other supervisors' registries are read at most every ``REFRESH_SECONDS``; on each routes
tick (10 Hz) only the states of the jobs pinned here (one pipelined read, when there are any)
and this supervisor's due restarts (one read), so a pinned job is never dispatched between
two refreshes into an id that is taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import msgspec

from enrgdaq.control.keys import Keys
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.nodes import node_ids
from enrgdaq.control.queues import job_node
from enrgdaq.control.registry import JobRecord, JobRegistry

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
"""Other supervisors' registries are read again at most this often."""

NODE_CACHE_SIZE = 4096
"""Config texts whose node is remembered (cleared when there are more: texts of edited files)."""

DEFER_SECONDS = 0.5
"""How long a job of this node waits, and waits again, while a job pinned here with its id runs."""

HELD_REASON = "unique id in use on its node"
"""The start of the stop reason of a job held by :class:`NodePlacement` (released only by it)."""

Claim = tuple[str, JobRecord]
"""A job that runs on some node: (the supervisor that registered it, its record)."""

# KEYS: job, restarts. ARGV: reason, error, uid. Stops a wanted job and keeps it from running.
HOLD = """
local f = redis.call('HMGET', KEYS[1], 'desired', 'removed', 'state')
if not f[3] or f[1] ~= 'run' or f[2] == '1' then return 'no' end
redis.call('HSET', KEYS[1], 'desired', 'stop', 'stop_reason', ARGV[1], 'error', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
if f[3] == 'starting' or f[3] == 'running' then return 'stopping' end
redis.call('HSET', KEYS[1], 'state', 'stopped', 'restart_at', '')
return 'stopped'
"""

# KEYS: job, restarts. ARGV: reason prefix, uid, now. Starts a job this module held, and no other
# (a person's stop since then stays).
RELEASE = """
local f = redis.call('HMGET', KEYS[1], 'desired', 'stop_reason', 'state')
if f[1] ~= 'stop' or not f[2] or string.sub(f[2], 1, string.len(ARGV[1])) ~= ARGV[1] then return 'no' end
redis.call('HSET', KEYS[1], 'desired', 'run', 'stop_reason', '', 'error', '')
if f[3] == 'stopped' or f[3] == 'crashed' then
  redis.call('HSET', KEYS[1], 'state', 'registered', 'consecutive_crashes', 0)
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
return 'released'
"""


def collisions(claims: Iterable[Claim], node: str) -> dict[tuple[str, str], str]:
    """Of the jobs that run on ``node``, those whose unique id another one keeps:
    ``(supervisor, unique id) -> supervisor whose job keeps the id``.

    The node's own supervisor first, then the others by id; a removed job claims nothing.
    """
    holder: dict[str, str] = {}
    lost: dict[tuple[str, str], str] = {}
    for sid, record in sorted(claims, key=lambda c: (c[0] != node, c[0])):
        if record.removed:
            continue
        first = holder.setdefault(record.unique_id, sid)
        if first != sid:
            lost[(sid, record.unique_id)] = first
    return lost


def held_error(unique_id: str, node: str, holder: str) -> str:
    """The error a held job shows: why it does not run, and what a person does about it."""
    whose = "that node's own job" if holder == node else f"a job pinned there by supervisor '{holder}'"
    return (
        f"daq_job_unique_id '{unique_id}' is already used on node '{node}' by {whose}: not run there "
        "(rings and store consumers of a node are named by unique id); rename one of them"
    )


class NodePlacement:
    """The jobs of every supervisor on the Redis by node, as the routes tick of one supervisor
    (``registry``'s) needs them; see the module."""

    def __init__(
        self,
        registry: JobRegistry,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.node = registry.keys.supervisor_id
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.others: dict[str, list[JobRecord]] = {}
        """Other supervisors' records, by supervisor, as of the last refresh."""
        self.pinned_here: list[Claim] = []
        """Other supervisors' jobs pinned to this node (their states read again every tick)."""
        self._refreshed_at: float | None = None
        self._registries: dict[str, JobRegistry] = {}
        self._nodes: dict[str, str] = {}  # config text -> node, for the texts that may name one
        self._unrouted: set[tuple[str, str]] = set()  # logged once
        self._deferred: set[str] = set()  # logged once
        self._hold = registry.redis.register_script(HOLD)
        self._release = registry.redis.register_script(RELEASE)

    # -- where a job runs --------------------------------------------------------------------
    def node_of(self, record: JobRecord, supervisor_id: str) -> str:
        """The node ``record`` (registered by ``supervisor_id``) runs on; its TOML is parsed once."""
        config = record.config
        if "node" not in config:
            return supervisor_id
        node = self._nodes.get(config)
        if node is None:
            node = self._nodes[config] = job_node(config, "")
        return node or supervisor_id

    def _claims_on(self, node: str, own: list[JobRecord]) -> list[Claim]:
        """Every job that runs on ``node``: this supervisor's (``own``, fresh) and the others'."""
        claims = [(self.node, r) for r in own if self.node_of(r, self.node) == node]
        for sid, records in self.others.items():
            claims += [(sid, r) for r in records if self.node_of(r, sid) == node]
        return claims

    # -- the routes tick ---------------------------------------------------------------------
    def before_dispatch(self, now: float | None = None) -> None:
        """Before the reconcile pass dispatches this supervisor's due jobs: hold those that
        would run on a node where their id is taken (a new file, ``enrgdaq start`` of a held
        job), and let those of this node wait while a job pinned here with their id still runs
        (its supervisor stops it within ``refresh_seconds``: never two runs with one id here)."""
        client, keys = self.registry.redis, self.registry.keys
        now = time.time() if now is None else now
        due = [str(uid) for uid in client.zrangebyscore(keys.restarts, "-inf", now, 0, 100)]
        if not due:
            return
        pipe = client.pipeline(transaction=False)
        for uid in due:
            pipe.hget(keys.job(uid), "config")
        nodes = [job_node(str(c or ""), self.node) for c in pipe.execute()]
        self._wait_for_pinned_runs([uid for uid, n in zip(due, nodes, strict=True) if n == self.node], now)
        if all(n == self.node for n in nodes):
            return
        self.refresh()
        self.hold_colliding(self.registry.all())

    def _wait_for_pinned_runs(self, due_here: list[str], now: float) -> None:
        """Put off the dispatch of this node's own due jobs whose id a run of a job pinned here
        still holds (its lease), by ``DEFER_SECONDS``."""
        pinned = {r.unique_id: sid for sid, r in self.pinned_here if r.unique_id in due_here}
        if not pinned:
            return
        pipe = self.registry.redis.pipeline(transaction=False)
        for uid, sid in pinned.items():
            pipe.exists(Keys(sid).lease(uid))
        for (uid, sid), held in zip(pinned.items(), pipe.execute(), strict=True):
            if not held:
                self._deferred.discard(uid)
                continue
            self.registry.reschedule(uid, now + DEFER_SECONDS)
            if uid not in self._deferred:
                self._deferred.add(uid)
                logger.warning("[%s] waits: a run of supervisor '%s' with its id is still here", uid, sid)

    def after_tick(self, own: list[JobRecord]) -> None:
        """Every ``refresh_seconds``: read the other supervisors again, hold or release ours."""
        if self._refreshed_at is not None and self.clock() - self._refreshed_at < self.refresh_seconds:
            self._update_pinned_here()
            return
        self.refresh()
        self.hold_colliding(own)

    def routed(self, own: list[JobRecord]) -> list[JobRecord]:
        """The records whose stores and bridges this node's routes name: ``own`` (this tick's)
        that run here and the other supervisors' jobs pinned here, without the held ones."""
        claims = [(self.node, r) for r in own if self.node_of(r, self.node) == self.node]
        claims += self.pinned_here
        lost = collisions(claims, self.node)
        self._log_unrouted(lost)
        return [r for sid, r in claims if (sid, r.unique_id) not in lost]

    # -- reading other supervisors -----------------------------------------------------------
    def refresh(self) -> None:
        """Read every other supervisor's records (a few round trips per supervisor)."""
        client = self.registry.redis
        others: dict[str, list[JobRecord]] = {}
        for sid in node_ids(client):
            if sid == self.node:
                continue
            registry = self._registries.get(sid)
            if registry is None:
                registry = self._registries[sid] = JobRegistry(client, sid)
            others[sid] = registry.all()
        self.others = others
        self.pinned_here = [
            (sid, r) for sid, records in others.items() for r in records if self.node_of(r, sid) == self.node
        ]
        if len(self._nodes) > NODE_CACHE_SIZE:  # config texts that are no more
            self._nodes.clear()
        self._refreshed_at = self.clock()

    def _update_pinned_here(self) -> None:
        """The states of the jobs pinned here, fresh (a store that starts is routed as running).
        A run without its lease is dead (its supervisor may be lost and not notice): not running."""
        if not self.pinned_here:
            return
        pipe = self.registry.redis.pipeline(transaction=False)
        for sid, record in self.pinned_here:
            pipe.hmget(Keys(sid).job(record.unique_id), "state", "desired", "removed")
            pipe.exists(Keys(sid).lease(record.unique_id))
        replies = pipe.execute()
        fresh: list[Claim] = []
        for i, (sid, record) in enumerate(self.pinned_here):
            (state, desired, removed), leased = replies[2 * i], replies[2 * i + 1]
            if state is None:
                continue  # forgotten
            try:
                job_state = JobState(state)
            except ValueError:
                job_state = record.state
            if job_state is JobState.RUNNING and not leased:
                job_state = JobState.WAITING
            changed = msgspec.structs.replace(
                record, state=job_state, desired=desired or record.desired, removed=removed == "1"
            )
            fresh.append((sid, changed))
        self.pinned_here = fresh

    # -- one unique id per node --------------------------------------------------------------
    def hold_colliding(self, own: list[JobRecord]) -> None:
        """Stop this supervisor's jobs pinned to a node where their id is taken; start again the
        ones held before whose id is free there now."""
        held = [r for r in own if r.desired == "stop" and r.stop_reason.startswith(HELD_REASON)]
        pinned = [r for r in own if self.node_of(r, self.node) != self.node]
        if not pinned and not held:
            return
        lost: dict[str, tuple[str, str]] = {}  # uid -> (node, holder)
        for node in sorted({self.node_of(r, self.node) for r in pinned}):
            for (sid, uid), holder in collisions(self._claims_on(node, own), node).items():
                if sid == self.node:
                    lost[uid] = (node, holder)
        for record in pinned:
            if record.unique_id in lost and not record.removed:
                self._hold_one(record, *lost[record.unique_id])
        for record in held:
            if record.unique_id not in lost:
                self._release_one(record)

    def _hold_one(self, record: JobRecord, node: str, holder: str) -> None:
        uid, keys = record.unique_id, self.registry.keys
        error = held_error(uid, node, holder)
        if record.desired == "stop" and record.stop_reason.startswith(HELD_REASON):
            if record.error != error:  # the end of its last run wrote its own error over it
                self.registry.redis.hset(keys.job(uid), "error", error)
            return
        reason = f"{HELD_REASON} '{node}'"
        done = self._hold(keys=[keys.job(uid), keys.restarts], args=[reason, error, uid])
        if done != "no":
            logger.error("[%s] %s (%s)", uid, error, done)

    def _release_one(self, record: JobRecord) -> None:
        uid, keys = record.unique_id, self.registry.keys
        done = self._release(keys=[keys.job(uid), keys.restarts], args=[HELD_REASON, uid, repr(time.time())])
        if done != "no":
            logger.info("[%s] its unique id is free on its node now: started again", uid)

    def _log_unrouted(self, lost: dict[tuple[str, str], str]) -> None:
        new = set(lost) - self._unrouted
        for sid, uid in sorted(new):
            logger.warning(
                "[%s] pinned to this node by supervisor '%s': not routed, %s",
                uid,
                sid,
                held_error(uid, self.node, lost[(sid, uid)]),
            )
        self._unrouted = set(lost)
