"""Plugin modules: a job class is found by its name once its module is listed; failures name it."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator

import pytest

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.types import JobTypeRegistry
from enrgdaq.errors import ConfigError, PluginImportError, UnknownJobTypeError

MakeModule = Callable[..., str]


@pytest.fixture
def make_module(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeModule]:
    """Write ``<name>_<random>.py`` (``<name>.py`` if exact) into a directory on sys.path.

    Returns the module name; the modules are dropped from sys.modules afterwards.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(name: str, source: str, exact: bool = False) -> str:
        module_name = name if exact else f"{name}_{uuid.uuid4().hex[:8]}"
        with open(os.path.join(str(tmp_path), f"{module_name}.py"), "w") as f:
            f.write(textwrap.dedent(source))
        made.append(module_name)
        return module_name

    yield make
    for module_name in made:
        sys.modules.pop(module_name, None)


GOOD_PLUGIN = """\
    import math

    from enrgdaq.daq.base import DAQJob
    from enrgdaq.daq.jobs.test_job import DAQJobTest  # imported, not defined here
    from enrgdaq.daq.models import DAQJobConfig


    class DAQJobThermometer(DAQJob):
        config_type = DAQJobConfig

        def start(self):
            self.sleep_until(math.inf)  # until stopped


    class DAQJobBarometer(DAQJobThermometer):
        queue = "slow"


    class NotAJob:
        pass
"""


def test_a_module_that_does_not_exist_raises_plugin_import_error_naming_it() -> None:
    with pytest.raises(PluginImportError) as caught:
        JobTypeRegistry().load_plugin("no_such_module_xyz")

    assert "no_such_module_xyz" in str(caught.value)
    assert caught.value.field == "plugins"
    assert isinstance(caught.value, ConfigError)


def test_a_module_that_raises_on_import_gives_an_error_naming_it_and_the_exception(
    make_module: MakeModule,
) -> None:
    name = make_module("lab_broken", 'raise RuntimeError("the wiring is wrong")\n')

    with pytest.raises(PluginImportError) as caught:
        JobTypeRegistry().load_plugin(name)

    text = str(caught.value)
    assert name in text
    assert "RuntimeError" in text and "the wiring is wrong" in text
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_module_with_a_syntax_error_gives_an_error_naming_it(make_module: MakeModule) -> None:
    name = make_module("lab_typo", "class DAQJobX(:\n")

    with pytest.raises(PluginImportError, match=name):
        JobTypeRegistry().load_plugin(name)


def test_a_good_plugin_registers_its_job_classes_by_class_name(make_module: MakeModule) -> None:
    registry = JobTypeRegistry()
    name = make_module("lab_jobs", GOOD_PLUGIN)

    found = registry.load_plugin(name)

    module = sys.modules[name]
    assert sorted(found) == ["DAQJobBarometer", "DAQJobThermometer"]
    assert registry.get("DAQJobThermometer") is module.DAQJobThermometer
    assert registry.get("DAQJobBarometer").queue == "slow"
    assert issubclass(registry.get("DAQJobThermometer"), DAQJob)
    assert {"DAQJobThermometer", "DAQJobBarometer"} <= set(registry.names())


def test_a_plugin_does_not_register_its_non_job_classes(make_module: MakeModule) -> None:
    registry = JobTypeRegistry()
    registry.load_plugin(make_module("lab_jobs", GOOD_PLUGIN))

    with pytest.raises(UnknownJobTypeError):
        registry.get("NotAJob")


def test_a_fresh_registry_does_not_know_a_plugin_job_until_its_module_is_loaded(
    make_module: MakeModule,
) -> None:
    make_module("lab_jobs", GOOD_PLUGIN)

    with pytest.raises(UnknownJobTypeError, match="DAQJobThermometer"):
        JobTypeRegistry().get("DAQJobThermometer")


def test_loading_the_same_plugin_twice_registers_it_once(make_module: MakeModule) -> None:
    registry = JobTypeRegistry()
    name = make_module("lab_jobs", GOOD_PLUGIN)

    first, second = registry.load_plugin(name), registry.load_plugin(name)

    assert sorted(first) == ["DAQJobBarometer", "DAQJobThermometer"]
    assert second == []


def test_a_plugin_registers_only_its_own_classes_not_those_of_a_module_with_a_longer_name(
    make_module: MakeModule,
) -> None:
    plugin = f"lab{uuid.uuid4().hex[:8]}"
    common = make_module(
        f"{plugin}_common",
        """\
        from enrgdaq.daq.base import DAQJob

        class DAQJobLabBase(DAQJob):
            "A base shared by the lab's jobs; not a job type itself."
    """,
        exact=True,
    )
    make_module(
        plugin,
        f"""\
        from {common} import DAQJobLabBase

        class DAQJobLabReal(DAQJobLabBase):
            pass
    """,
        exact=True,
    )

    found = JobTypeRegistry().load_plugin(plugin)

    assert found == ["DAQJobLabReal"]
