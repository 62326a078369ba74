"""Explicit registry of job types: ``daq_job_type`` name -> class.

Built-in jobs are listed below by module path and imported when first asked
for, so that a job whose optional dependency is missing fails with the extra
to install instead of vanishing. Custom jobs come from plugin modules
(``plugins = [...]`` in ``supervisor.toml``) and from the ``enrgdaq.jobs``
entry-point group; a plugin that fails to import is an error naming it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING

from enrgdaq.errors import MissingDependencyError, PluginImportError, UnknownJobTypeError

if TYPE_CHECKING:
    from enrgdaq.daq.base import DAQJob

logger = logging.getLogger(__name__)

BUILTIN_JOBS: dict[str, tuple[str, str | None]] = {
    # name: (module:Class, optional extra that provides its dependencies)
    "DAQJobTest": ("enrgdaq.daq.jobs.test_job:DAQJobTest", None),
    "DAQJobStoreCSV": ("enrgdaq.daq.jobs.store.csv:DAQJobStoreCSV", None),
    "DAQJobStoreRaw": ("enrgdaq.daq.jobs.store.raw:DAQJobStoreRaw", None),
    "DAQJobStoreParquet": ("enrgdaq.daq.jobs.store.parquet:DAQJobStoreParquet", None),
    "DAQJobStoreMemory": ("enrgdaq.daq.jobs.store.memory:DAQJobStoreMemory", None),
    "DAQJobStoreHDF5": ("enrgdaq.daq.jobs.store.hdf5:DAQJobStoreHDF5", "hdf5"),
    "DAQJobStoreROOT": ("enrgdaq.daq.jobs.store.root:DAQJobStoreROOT", "root"),
    "DAQJobStoreRedis": ("enrgdaq.daq.jobs.store.redis:DAQJobStoreRedis", None),
    "DAQJobStoreMySQL": ("enrgdaq.daq.jobs.store.mysql:DAQJobStoreMySQL", "mysql"),
    "DAQJobHandleStats": ("enrgdaq.daq.jobs.handle_stats:DAQJobHandleStats", None),
    "DAQJobHandleAlerts": ("enrgdaq.daq.jobs.handle_alerts:DAQJobHandleAlerts", None),
    "DAQJobHealthcheck": ("enrgdaq.daq.jobs.healthcheck:DAQJobHealthcheck", None),
    "DAQJobAlertSlack": ("enrgdaq.daq.alert.alert_slack:DAQJobAlertSlack", None),
    "DAQJobPCMetrics": ("enrgdaq.daq.jobs.pc_metrics:DAQJobPCMetrics", None),
    "DAQJobServeHTTP": ("enrgdaq.daq.jobs.serve_http:DAQJobServeHTTP", None),
    "DAQJobCAENDigitizer": ("enrgdaq.daq.jobs.caen.digitizer:DAQJobCAENDigitizer", None),
    "DAQJobCAENHV": ("enrgdaq.daq.jobs.caen.hv:DAQJobCAENHV", None),
    "DAQJobN1081B": ("enrgdaq.daq.jobs.caen.n1081b:DAQJobN1081B", None),
    "DAQJobCAENToolbox": ("enrgdaq.daq.jobs.caen.toolbox:DAQJobCAENToolbox", None),
    "DAQJobCamera": ("enrgdaq.daq.jobs.camera:DAQJobCamera", None),
    "DAQJobXiaomiMijia": ("enrgdaq.daq.jobs.sensor.xiaomi_mijia:DAQJobXiaomiMijia", None),
    "DAQJobRemote": ("enrgdaq.daq.jobs.remote:DAQJobRemote", None),
    "DAQJobRemoteProxy": ("enrgdaq.daq.jobs.remote:DAQJobRemoteProxy", None),
}

DEPRECATED_ALIASES = {
    "test": "DAQJobTest",
    "store_csv": "DAQJobStoreCSV",
    "store_root": "DAQJobStoreROOT",
    "serve_http": "DAQJobServeHTTP",
    "handle_stats": "DAQJobHandleStats",
    "handle_alerts": "DAQJobHandleAlerts",
    "alert_slack": "DAQJobAlertSlack",
    "healthcheck": "DAQJobHealthcheck",
    "n1081b": "DAQJobN1081B",  # the original's configs/examples/n1081b.toml
    "remote": "DAQJobRemote",  # an older configs/examples/remote.toml
}

ENTRY_POINT_GROUP = "enrgdaq.jobs"


class JobTypeRegistry:
    def __init__(self) -> None:
        self._classes: dict[str, type[DAQJob]] = {}
        self._loaded_plugins: set[str] = set()
        self._entry_points_loaded = False
        self.failed: dict[str, PluginImportError] = {}
        """Plugin modules and entry points that failed to import, by name: a job whose type is
        unknown is told that one of these may have defined it."""

    def register(self, cls: type[DAQJob], name: str | None = None) -> None:
        from enrgdaq.daq.store.base import DAQJobStore
        from enrgdaq.daq.store.routing import register_store_class

        self._classes[name or cls.__name__] = cls
        if issubclass(cls, DAQJobStore):
            register_store_class(cls.__name__, [t.__name__ for t in cls.allowed_store_config_types])

    def names(self) -> list[str]:
        return sorted(set(self._classes) | set(BUILTIN_JOBS))

    def get(self, name: str) -> type[DAQJob]:
        if name in DEPRECATED_ALIASES:
            logger.warning("daq_job_type '%s' is deprecated, use '%s'", name, DEPRECATED_ALIASES[name])
            name = DEPRECATED_ALIASES[name]
        if name in self._classes:
            return self._classes[name]
        if name in BUILTIN_JOBS:
            return self._load_builtin(name)
        self.load_entry_points()
        if name in self._classes:
            return self._classes[name]
        if self.failed:
            broken = "; ".join(str(exc.message) for exc in self.failed.values())
            raise UnknownJobTypeError(
                f"unknown daq_job_type '{name}': a plugin that may define it failed to import ({broken}); "
                f"known types: {', '.join(self.names())}",
                field="daq_job_type",
            )
        raise UnknownJobTypeError(
            f"unknown daq_job_type '{name}'; known types: {', '.join(self.names())}. "
            "Custom jobs need their module in `plugins` of supervisor.toml or an "
            f"'{ENTRY_POINT_GROUP}' entry point",
            field="daq_job_type",
        )

    def _load_builtin(self, name: str) -> type[DAQJob]:
        target, extra = BUILTIN_JOBS[name]
        module_name, class_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if extra is not None:
                raise MissingDependencyError(name, extra, exc) from exc
            raise
        cls: type[DAQJob] = getattr(module, class_name)
        self.register(cls, name)
        return cls

    def load_plugin(self, module_name: str) -> list[str]:
        """Import ``module_name`` and register the job classes defined in it."""
        if module_name in self._loaded_plugins:
            return []
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            error = PluginImportError(
                f"plugin module '{module_name}' failed to import: {type(exc).__name__}: {exc}",
                field="plugins",
            )
            self.failed[module_name] = error
            raise error from exc
        self._loaded_plugins.add(module_name)
        self.failed.pop(module_name, None)
        return self._register_module(module)

    def load_plugins(self, module_names: list[str], search_dir: str | None = None) -> list[PluginImportError]:
        """Import every plugin module; one that fails is returned, never raised, so that it
        affects only the jobs whose classes it would have defined.

        ``search_dir`` (the config directory) goes on ``sys.path`` first: a module lying
        next to the TOML files is found the same way under ``enrgdaq up``, a plain
        ``celery -A enrgdaq worker`` and in compose.
        """
        if search_dir:
            add_search_dir(search_dir)
        # Only this list's failures count (a plugin dropped from the list, or fixed, is no
        # longer blamed); a module that failed is imported again, so a fixed file loads.
        self.failed = {k: v for k, v in self.failed.items() if k.startswith("entry point ")}
        problems = []
        for module_name in module_names:
            try:
                self.load_plugin(module_name)
            except PluginImportError as exc:
                logger.error("%s", exc)
                problems.append(exc)
        try:
            self.load_entry_points()
        except PluginImportError as exc:
            problems.append(exc)
        return problems

    def _register_module(self, module: ModuleType) -> list[str]:
        from enrgdaq.daq.base import DAQJob

        found = []
        for _, obj in inspect.getmembers(module, inspect.isclass):
            own = obj.__module__ == module.__name__ or obj.__module__.startswith(module.__name__ + ".")
            if issubclass(obj, DAQJob) and own:
                self.register(obj)
                found.append(obj.__name__)
        return found

    def load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from enrgdaq.daq.base import DAQJob

        broken: list[PluginImportError] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:
                error = PluginImportError(
                    f"entry point '{ep.name} = {ep.value}' ({ENTRY_POINT_GROUP}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
                self.failed[f"entry point {ep.name}"] = error
                logger.error("%s", error)
                broken.append(error)
                continue
            if inspect.isclass(obj) and issubclass(obj, DAQJob):
                self.register(obj, ep.name if ep.name != obj.__name__ else None)
                self.register(obj)
            elif isinstance(obj, ModuleType):
                self._register_module(obj)
        if broken:
            raise broken[0]


registry = JobTypeRegistry()


def get_daq_job_class(name: str) -> type[DAQJob]:
    """The class registered under ``name`` (the original's lookup function)."""
    return registry.get(name)


def add_search_dir(directory: str) -> None:
    """Put ``directory`` at the front of ``sys.path`` (once), for plugin modules that live there."""
    path = os.path.abspath(directory)
    if os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)
        importlib.invalidate_caches()


def load_plugins(module_names: list[str], search_dir: str | None = None) -> list[PluginImportError]:
    """Import plugin modules into the process-wide registry; failures are returned (see
    :meth:`JobTypeRegistry.load_plugins`)."""
    return registry.load_plugins(module_names, search_dir)
