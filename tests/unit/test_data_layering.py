"""The data plane (``enrgdaq/data``) is a lower layer: it never imports the job layer (``enrgdaq/daq``).

The job layer hands it a codec (``enrgdaq.data.codec.SlotCodec``) that turns
its messages into a header and a payload and back; the ring itself moves
bytes and Arrow buffers.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import enrgdaq.data

DATA_DIR = pathlib.Path(enrgdaq.data.__file__).parent
REPO = DATA_DIR.parent.parent
FORBIDDEN = "enrgdaq.daq"


def data_modules() -> list[pathlib.Path]:
    found = sorted(DATA_DIR.rglob("*.py"))
    assert len(found) > 5, f"no data plane modules found in {DATA_DIR}"
    return found


def imported_names(path: pathlib.Path) -> list[str]:
    """Every module an import statement in ``path`` names, wherever it sits (functions, TYPE_CHECKING)."""
    package = "enrgdaq.data"
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against enrgdaq.data
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_no_module_of_the_data_plane_imports_the_job_layer() -> None:
    offenders = {
        str(path.relative_to(REPO)): bad
        for path in data_modules()
        if (bad := [n for n in imported_names(path) if n == FORBIDDEN or n.startswith(FORBIDDEN + ".")])
    }

    assert offenders == {}


def test_importing_every_data_plane_module_loads_nothing_of_the_job_layer() -> None:
    """Catches what the source scan cannot: a module the data plane imports that imports daq."""
    modules = [f"enrgdaq.data.{p.stem}" for p in data_modules() if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m == {FORBIDDEN!r} or m.startswith({FORBIDDEN + '.'!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


NEUTRAL_RING = """
import json, os, sys
import pyarrow as pa
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.data.writer import RingWriter


class DictCodec:
    '''Messages are dicts; "table" or "raw" is the payload, the rest the header (JSON).'''

    def split(self, message):
        rest = {k: v for k, v in message.items() if k not in ("table", "raw")}
        payload = message.get("table", message.get("raw"))
        return message["kind"], json.dumps(rest).encode(), payload

    def joiner(self, type_name):
        def join(header, payload, hold):
            message = json.loads(bytes(header))
            if payload is not None:
                message["table" if isinstance(payload, pa.Table) else "raw"] = payload
            message["hold"] = hold
            return message
        return join


run_dir = sys.argv[1]
settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=8 * 4096, slot_bytes=4096)
writer = RingWriter("producer", settings, DictCodec())
writer.ensure_consumers(["store"])
reader = RingReader("store", run_dir, DictCodec())
reader.scan()
table = pa.table({"n": [1, 2, 3]})
writer.write({"kind": "table", "tag": "t", "table": table})
writer.write({"kind": "raw", "tag": "r", "raw": b"bytes"})
writer.write({"kind": "rows", "tag": "h", "rows": [[1, "a"], [2, "b"]]})
got = reader.drain()
ok = (
    [m["tag"] for m in got] == ["t", "r", "h"]
    and got[0]["table"].equals(table)
    and got[1]["raw"] == b"bytes"
    and got[2]["rows"] == [[1, "a"], [2, "b"]]
    and all(m["hold"] is not None for m in got)
)
index = writer.ring.find_consumer("store")
for m in got:
    m.clear()  # the consumer is done: the holds go, the slots are released
released = writer.ring.cursor(index) == 3
del got
reader.close()
writer.close()
daq = sorted(m for m in sys.modules if m.startswith("enrgdaq.daq"))
print(json.dumps({"ok": ok, "released": released, "daq": daq}))
"""


def test_the_ring_carries_a_codecs_messages_without_the_job_layer(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", NEUTRAL_RING, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '{"ok": true, "released": true, "daq": []}'
