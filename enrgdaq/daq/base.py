"""``DAQJob``: the base class of every job, with the original's public API.

A job subclass sets ``config_type``, implements ``start()`` as a loop that
ends when ``self._has_been_freed`` becomes true, and calls
``self._put_message_out(message)`` to publish. Jobs that receive messages list
their types in ``allowed_message_in_types`` and override ``handle_message``.

Where messages are handled: jobs with their own ``start()`` loop get them on
a receive thread (as in the original), so ``handle_message`` runs beside
``start()``; guard shared state with a lock. Stores (``DAQJobStore``) handle
messages inside their own loop, on one thread, so they need no locks.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar

from enrgdaq.daq.channel import StoreChannel
from enrgdaq.daq.models import (
    DAQJobConfig,
    DAQJobInfo,
    DAQJobMessage,
    DAQJobMessageHeartbeat,
    DAQJobMessageJobStarted,
    DAQJobMessageRoutes,
    DAQJobMessageStop,
    DAQJobMessageStoreQuery,
    DAQJobMessageStoreReady,
)
from enrgdaq.daq.outbox import StoreOutbox
from enrgdaq.daq.stats import JobCounters
from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobStoreConfig
from enrgdaq.daq.topics import Topic, exact, prefix
from enrgdaq.errors import DAQJobStopError, MessageRejectedError
from enrgdaq.models import SupervisorInfo

STOP_CHECK_SECONDS = 0.1
"""How often :meth:`DAQJob.sleep_until` looks for a stop request (jobs stop within 1 s)."""


class JobLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg,unused-ignore]
    """Puts the job's unique id at the start of every line it logs."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('job', '?')}] {msg}", kwargs


class DAQJob(StoreOutbox):
    allowed_message_in_types: list[type[DAQJobMessage]] = []
    topics_to_subscribe: list[str] = []
    config_type: Any = DAQJobConfig
    config: Any
    restart_offset: timedelta
    multiprocessing_method: str = "default"
    watchdog_timeout_seconds: float = 0
    watchdog_force_exit: bool = False
    queue: ClassVar[str] = "default"
    """Celery queue of the worker that runs this job when its TOML names none."""
    _receive_on_thread: ClassVar[bool] = True

    def __init__(
        self,
        config: Any,
        supervisor_info: SupervisorInfo | None = None,
        instance_id: int | None = None,
        message_in: Any = None,
        message_out: Any = None,
        raw_config: str | None = None,
        zmq_xpub_url: str | None = None,
        zmq_xsub_url: str | None = None,
    ) -> None:
        self.config = config
        self.instance_id = instance_id or 0
        self.supervisor_info = supervisor_info or SupervisorInfo(supervisor_id="unknown")
        self.unique_id: str = getattr(config, "daq_job_unique_id", None) or str(uuid.uuid4())
        self.raw_config = raw_config
        self._has_been_freed = False
        self._cleaned_up = False
        self._logger = JobLogAdapter(logging.getLogger(type(self).__module__), {"job": self.unique_id})
        verbosity = getattr(config, "verbosity", None)
        if verbosity is not None:
            self._logger.logger.setLevel(verbosity.to_logging_level())
        # Per-instance copies: the original mutated the class-level lists.
        self.topics_to_subscribe = list(type(self).topics_to_subscribe) + list(
            getattr(config, "topics_to_subscribe", [])
        )
        self.allowed_message_in_types = list(type(self).allowed_message_in_types)
        self._accepts: dict[type, bool] = {}  # message type -> in allowed_message_in_types
        self.info = DAQJobInfo(
            daq_job_type=type(self).__name__,
            unique_id=self.unique_id,
            instance_id=self.instance_id,
            supervisor_info=self.supervisor_info,
        )
        self.counters = JobCounters()
        self.routes: dict[str, list[str]] | None = None
        self.stores_not_running: frozenset[str] = frozenset()
        self.last_supervisor_heartbeat: datetime | None = None
        self.message_in = message_in
        self.message_out = message_out if message_out is not None else []
        self._plane: Any = None
        self._init_outbox(bool(getattr(config, "use_shm_when_possible", True)))
        self._receive_thread: threading.Thread | None = None
        self.zmq_xpub_url = zmq_xpub_url
        self.zmq_xsub_url = zmq_xsub_url
        if zmq_xpub_url and zmq_xsub_url:
            self._connect(zmq_xpub_url, zmq_xsub_url)

    # -- message plane ---------------------------------------------------------
    def _subscriptions(self) -> list[bytes]:
        sid = self.supervisor_info.supervisor_id
        subs = [exact(Topic.daq_job_direct(self.unique_id)), exact(Topic.supervisor_broadcast(sid))]
        subs += [prefix(t) for t in self.topics_to_subscribe]
        return subs

    def _connect(self, xpub_url: str, xsub_url: str) -> None:
        from enrgdaq.message.client import MessagePlaneClient

        self._plane = MessagePlaneClient(
            xpub_url,
            xsub_url,
            self._subscriptions(),
            own_topic=Topic.daq_job_direct(self.unique_id),
            log=self._logger,
        )
        self.info.subscribed_topics = [
            s.decode(errors="replace").rstrip("\x00") for s in self._subscriptions()
        ]
        self._plane.publisher()  # proves the path before start() runs
        if not self._receive_on_thread:
            self._plane.release_receiver()  # start() may run on another thread than __init__
        if self._receive_on_thread:
            self._receive_thread = threading.Thread(
                target=self._receive_loop, name=f"receive-{self.unique_id}", daemon=True
            )
            self._receive_thread.start()

    def _receive_loop(self) -> None:
        while not self._has_been_freed:
            self._process_inbound(timeout_ms=100)

    def _process_inbound(self, timeout_ms: int) -> int:
        """Receive and dispatch what arrived; returns how many messages were handled."""
        if self._plane is None:
            return 0
        messages = self._plane.receive(timeout_ms)
        for message in messages:
            self._dispatch(message)
        return len(messages)

    def _dispatch(self, message: DAQJobMessage) -> None:
        if isinstance(message, DAQJobMessageStop):
            self._logger.info("stop requested: %s", message.reason)
            self.request_stop()
            return
        if isinstance(message, DAQJobMessageRoutes):
            self.stores_not_running = frozenset(message.not_running)
            self.routes = message.routes
            return
        if isinstance(message, DAQJobMessageStoreReady):  # a store runs: it can take inline messages
            routes = dict(self.routes or {})
            routes[message.store_type] = sorted({*routes.get(message.store_type, []), message.unique_id})
            self.stores_not_running = self.stores_not_running - {message.unique_id}
            self.routes = routes
            return
        if isinstance(message, DAQJobMessageStoreQuery):
            self._on_store_query()
            return
        if isinstance(message, DAQJobMessageHeartbeat):
            self.last_supervisor_heartbeat = datetime.now()
            return
        self._deliver(message)

    def _takes(self, message: DAQJobMessage) -> bool:
        """Whether this job takes messages of this type (cached per type); counts those it does not."""
        accepted = self._accepts.get(type(message))
        if accepted is None:
            accepted = self._accepts[type(message)] = any(
                isinstance(message, t) for t in self.allowed_message_in_types
            )
        if not accepted:
            self.counters.rejected += 1
        return accepted

    def _deliver(self, message: DAQJobMessage) -> None:
        """Hand a data message to ``handle_message`` if this job takes its type."""
        if not self._takes(message):
            return
        try:
            self.handle_message(message)
        except DAQJobStopError:
            self.request_stop()
        except Exception:
            self.counters.failed += 1
            self._logger.exception("handle_message failed for %s", type(message).__name__)

    # -- the original API --------------------------------------------------------
    def start(self) -> None:
        """The job's main loop; runs until ``self._has_been_freed`` is true."""
        raise NotImplementedError

    def _on_store_query(self) -> None:
        """Only stores answer (see ``DAQJobStore``)."""

    def handle_message(self, message: DAQJobMessage) -> bool:
        """Called for each received message of an allowed type."""
        if isinstance(message, DAQJobMessageStop):
            self.free()
            raise DAQJobStopError(message.reason)
        if not any(isinstance(message, t) for t in self.allowed_message_in_types):
            raise MessageRejectedError(
                f"Message type '{type(message).__name__}' is not accepted by '{type(self).__name__}'"
            )
        self.counters.record_in(message)
        return True

    def _prepare_message(self, message: DAQJobMessage, use_shm: bool = False) -> DAQJobMessage:
        message.daq_job_info = self.info
        return message

    def _put_message_out(self, message: DAQJobMessage, use_shm: bool = False) -> None:
        """Publish ``message`` to every topic it is for."""
        message = self._prepare_message(message, use_shm)
        message.pre_send()
        if not message.topics:
            self.counters.unrouted += 1
            self._logger.warning("%s has no topic, nobody can receive it", type(message).__name__)
            return
        if self._plane is None:
            self.message_out.append(message)
            self.counters.record_out(0)
            return
        if isinstance(message, DAQJobMessageStore) and self._route_store_message(message):
            return
        self._send_inline(message)

    def _send_inline(self, message: DAQJobMessage) -> None:
        """Over the message plane (a prepared message, its topics set)."""
        self.counters.record_out(self._plane.publisher().send(message))

    def store_channel(
        self, store_config: DAQJobStoreConfig, tag: str | None = None, topics: set[str] | None = None
    ) -> StoreChannel:
        """A pre-routed way to send tables to the stores of ``store_config`` at a high rate
        (:mod:`enrgdaq.daq.channel`): make one when the job starts, then ``channel.put(table)``
        per readout instead of ``_put_message_out(DAQJobMessageStorePyArrow(...))``."""
        return StoreChannel(self, store_config, tag=tag, topics=topics)

    def get_job_started_message(self) -> DAQJobMessageJobStarted:
        return DAQJobMessageJobStarted(daq_job_info=self.info)

    def request_stop(self) -> None:
        """Ask ``start()`` to return; safe from any thread."""
        self._has_been_freed = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A job written against the original API may clean up in ``__del__``, which ``free()``
        calls; Python calls it again at garbage collection, so it is made to run once per job."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__del__")
        if own is not None and not getattr(own, "_runs_once", False):
            cls.__del__ = _once_per_job(own)  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        """Release what the job holds (files, devices) and write what it buffered; ``free()``
        calls it once, before the job's sockets close. Override it (and call ``super()``)
        rather than defining ``__del__``, which garbage collection may run at any time."""

    def sleep_until(self, due: float) -> bool:
        """Wait until ``due`` (a ``time.monotonic()`` time) in steps of at most
        :data:`STOP_CHECK_SECONDS`, so that a poll loop built on it ends within that long of a
        stop request. False if the job was stopped before ``due``."""
        while not self._has_been_freed:
            left = due - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, STOP_CHECK_SECONDS))
        return False

    def free(self, for_good: bool = False) -> None:
        """Stop the job and release what it holds (files, devices, sockets); runs once.

        Calls :meth:`cleanup`, then a ``__del__`` that a job of the original API defines (once);
        an error of either is raised after the sockets are closed (the run records it).
        ``for_good``: a person stopped it or its file is gone, so it will not come
        back: a consumer then stops holding producers' rings.
        """
        self._has_been_freed = True
        if self._cleaned_up:
            return
        self._cleaned_up = True
        legacy = getattr(type(self), "__del__", None)
        try:
            try:
                self.cleanup()
            finally:
                if legacy is not None:
                    legacy(self)
        finally:
            self._close_data_plane(for_good)
            self._close_message_plane()

    def _close_message_plane(self) -> None:
        if self._receive_thread is not None and self._receive_thread is not threading.current_thread():
            self._receive_thread.join(2.0)
        if self._plane is not None:
            self._plane.close()
            self._plane = None

    @property
    def message_plane(self) -> Any:
        return self._plane


def _once_per_job(method: Any) -> Any:
    """``method`` (a ``__del__``) wrapped so that it runs at most once per job object."""

    @functools.wraps(method)
    def once(self: Any) -> None:
        done = self.__dict__.setdefault("_del_done", set())
        if method not in done:
            done.add(method)
            method(self)

    once._runs_once = True  # type: ignore[attr-defined]
    return once


from enrgdaq.daq.process import DAQJobProcess  # noqa: E402  (re-exported: the original's location)

__all__ = ["DAQJob", "DAQJobProcess"]
