"""Which store classes receive which kind of store config.

Built-in store classes are listed here by name, so that a producer can route
to a store that runs in another process (or is not even importable here).
Store classes from plugins are added by :func:`register_store_class` when the
job registry registers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enrgdaq.daq.topics import Topic

if TYPE_CHECKING:
    from enrgdaq.daq.store.models import DAQJobMessageStore

_ROUTES: dict[str, set[str]] = {
    "DAQJobStoreConfigCSV": {"DAQJobStoreCSV"},
    "DAQJobStoreConfigROOT": {"DAQJobStoreROOT"},
    "DAQJobStoreConfigHDF5": {"DAQJobStoreHDF5"},
    "DAQJobStoreConfigMySQL": {"DAQJobStoreMySQL"},
    "DAQJobStoreConfigRedis": {"DAQJobStoreRedis"},
    "DAQJobStoreConfigRaw": {"DAQJobStoreRaw"},
    "DAQJobStoreConfigMemory": {"DAQJobStoreMemory"},
    "DAQJobStoreConfigParquet": {"DAQJobStoreParquet"},
}


def register_store_class(store_class_name: str, config_type_names: list[str]) -> None:
    for config_name in config_type_names:
        _ROUTES.setdefault(config_name, set()).add(store_class_name)


def store_class_names(message: DAQJobMessageStore) -> list[str]:
    """Store classes that take ``message``, in a stable order."""
    names: set[str] = set()
    for config in message.store_config.configured().values():
        names |= _ROUTES.get(type(config).__name__, set())
    return sorted(names)


def store_names_of_topics(topics: set[str]) -> list[str]:
    """Store class names that ``topics`` address (``store.X`` and ``store.supervisor.<id>.X``)."""
    key = frozenset(topics)
    cached = _NAMES.get(key)
    if cached is None:
        cached = _NAMES[key] = _names_of(topics)
        if len(_NAMES) > 1024:
            _NAMES.clear()
    return cached


_NAMES: dict[frozenset[str], list[str]] = {}


def _names_of(topics: set[str]) -> list[str]:
    names = set()
    for topic in topics:
        if topic.startswith("store.supervisor."):
            names.add(topic.rsplit(".", 1)[-1])
        elif topic.startswith("store."):
            names.add(topic[len("store.") :])
    return sorted(names)


_TOPICS: dict[tuple[int, bool, str], tuple[object, list[str]]] = {}


def store_topics(message: DAQJobMessageStore) -> list[str]:
    """Topics of a store message; cached per store config object (they live as long as a job)."""
    key = (id(message.store_config), message.target_local_supervisor, message.supervisor_id)
    cached = _TOPICS.get(key)
    if cached is not None and cached[0] is message.store_config:
        return cached[1]
    topics = _compute_topics(message)
    if len(_TOPICS) > 1024:
        _TOPICS.clear()
    _TOPICS[key] = (message.store_config, topics)
    return topics


def _compute_topics(message: DAQJobMessageStore) -> list[str]:
    names = store_class_names(message)
    if message.target_local_supervisor:
        sid = message.supervisor_id
        return [Topic.store_supervisor(sid, name) for name in names]
    return [Topic.store(name) for name in names]
