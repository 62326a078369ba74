"""`enrgdaq status` says when data went missing or astray, and when a producer waits for its stores."""

from __future__ import annotations

from enrgdaq.cli.status import render_table
from enrgdaq.control.status_document import data_health


def job(unique_id: str, stats: dict[str, object]) -> dict[str, object]:
    return {
        "unique_id": unique_id,
        "daq_job_type": "DAQJobTest",
        "queue": "default",
        "state": "running",
        "pid": 42,
        "hostname": "daq1",
        "restarts": 0,
        "last_heartbeat": None,
        "restart_at": None,
        "error": "",
        "config_file": "",
        "messages_in": 0,
        "messages_out": 0,
        "data": data_health(stats),
    }


def table(*jobs: dict[str, object]) -> str:
    return render_table(
        {"supervisor_id": "lab", "supervisor_alive": True, "jobs": list(jobs), "problems": {}}
    )


def test_a_healthy_pipeline_prints_no_data_line() -> None:
    healthy = {"sent": 100, "ring_dropped": 0, "ring_occupancy": 3, "ring_slots": 32, "ring_blocked_ms": 0}

    assert "data:" not in table(job("camera", healthy), job("store_csv", {"ring_lost": 0, "message_lost": 0}))


def test_every_loss_is_named_with_its_count_and_job() -> None:
    out = table(
        job("camera", {"ring_dropped": 7, "ring_occupancy": 1, "ring_slots": 32}),
        job("store_csv", {"ring_lost": 2, "message_lost": 5, "malformed": 1}),
    )

    assert "data: camera: 7 dropped by ring_policy drop" in out
    assert (
        "data: store_csv: 2 missed while evicted from a ring, 5 lost on the message plane, "
        "1 malformed messages dropped" in out
    )


def test_a_full_ring_says_the_producer_waits() -> None:
    out = table(job("digitizer", {"ring_occupancy": 32, "ring_slots": 32, "ring_blocked_ms": 5400}))

    assert "data: digitizer: ring full (32 slots): the producer waits for its stores" in out


def test_the_json_document_carries_the_counters_that_the_job_has() -> None:
    assert data_health({"ring_dropped": 3, "sent": 9, "cpu_percent": 1.5, "ring_slots": 8}) == {
        "ring_dropped": 3,
        "ring_slots": 8,
    }
