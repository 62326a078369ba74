"""A producer that comes back with another ring geometry gets a new ring file; a store that still
maps the old one reads it to its end (nothing lost, no SIGBUS) and then reads the new one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.harness.celery_proc import REPO

SCRIPT = textwrap.dedent(
    """
    import gc, sys
    import pyarrow as pa
    from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
    from enrgdaq.data.reader import RingReader
    from enrgdaq.data.settings import DataPlaneSettings
    from enrgdaq.data.writer import RingWriter

    run_dir = sys.argv[1]

    def message(number):
        return DAQJobMessageStorePyArrow(store_config=DAQJobStoreConfig(), table=pa.table({"n": [number]}))

    def numbers(messages):
        found = [m.get_table()["n"][0].as_py() for m in messages]
        for m in messages:
            m.release()
        return found

    store = RingReader("store", run_dir)
    big = DataPlaneSettings(run_dir=run_dir, ring_bytes=8 * 65536, slot_bytes=65536)
    writer = RingWriter("producer", big)
    writer.ensure_consumers(["store"])
    store.scan()
    for number in range(3):
        writer.write(message(number))
    first = numbers(store.drain())
    writer.write(message(3))  # not read yet when the producer goes
    writer.close()
    # The producer comes back after ring_buffer_size_mb was lowered; the store keeps running.
    writer = RingWriter("producer", DataPlaneSettings(run_dir=run_dir, ring_bytes=2 * 4096, slot_bytes=4096))
    writer.ensure_consumers(["store"])
    writer.write(message(100))
    store.scan()
    second = numbers(store.drain())
    third = numbers(store.drain())
    writer.write(message(101))
    fourth = numbers(store.drain())
    gc.collect()
    print(first, second, third, fourth, sorted(store.trackers))
    store.close()
    writer.close()
    """
)


def test_a_store_reads_the_old_ring_to_its_end_then_the_new_one(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, f"the store died ({done.returncode}): {done.stderr[-800:]}"
    assert done.stdout.split("\n")[0] == "[0, 1, 2] [3, 100] [] [101] ['ring-producer']", done.stdout
