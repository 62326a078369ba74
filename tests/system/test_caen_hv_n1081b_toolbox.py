"""The CAEN HV, N1081B and toolbox jobs under ``enrgdaq up``, on their own ``caen`` worker.

Simulated devices: the HV supply's channel is switched on and set to 300.5 V through the REST
API (the ``enrgdaq api`` process), and the stored ``ch_param`` rows show VMon ramping up to
it at RUp; the N1081B's counters and the toolbox's registers arrive as rows. The original's
three example files, unchanged, pass ``enrgdaq check``; run here (no crate, no CAEN library,
no caen-toolbox, nothing at 1.2.3.4) each shows its device or library error in
``enrgdaq status`` and is scheduled for a restart (the N1081B's and the toolbox's have been
restarted already), while the simulated jobs on the same worker keep writing. No password
appears in the status or the logs.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import pathlib
import shutil
import uuid
from typing import Any

import httpx
import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")
SECRET = "pw-" + uuid.uuid4().hex
SIMULATED = {
    "store_csv.toml": 'daq_job_type = "DAQJobStoreCSV"\nout_dir = "out/"\n',
    "hv.toml": f"""daq_job_type = "DAQJobCAENHV"
system_type = "SY4527"
link_type = "SIMULATED"
connection_arg = "sim"
password = "{SECRET}"
poll_interval_seconds = 0.2
[store_config.csv]
file_path = "hv.csv"
[simulation]
channels = 2
rup = 200.0
""",
    "counters.toml": f"""daq_job_type = "DAQJobN1081B"
simulate = true
host = "192.0.2.1"
port = 8080
password = "{SECRET}"
sections_to_store = ["SEC_A"]
poll_interval_seconds = 0.2
[store_config.csv]
file_path = "counters.csv"
""",
    "registers.toml": """daq_job_type = "DAQJobCAENToolbox"
simulate = true
digitizer_type = "dig1"
connection_string = "-c OPTICAL_LINK -l 0"
poll_interval_seconds = 0.2
[[register_labels]]
register = "0x11a8"
label = "ADC_ch_1_Temperature"
[store_config.csv]
file_path = "registers.csv"
""",
}
ORIGINALS = {  # file -> what its error in status names
    "caen_hv.toml": "CAEN",
    "n1081b.toml": "N1081B",
    "toolbox.toml": "caen-toolbox",
}


def rows(path: pathlib.Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def status(workdir: str) -> dict[str, dict[str, Any]]:
    result = enrgdaq(workdir, "status", "--json")
    if result.returncode != 0:
        return {}
    return {j["unique_id"]: j for j in json.loads(result.stdout)["jobs"]}


def test_simulated_caen_jobs_run_on_their_queue_and_the_originals_examples_retry(
    tmp_path: pathlib.Path,
) -> None:
    workdir = str(tmp_path)
    configs = tmp_path / "configs"
    configs.mkdir()
    port = free_port()
    (configs / "supervisor.toml").write_text(
        f'[info]\nsupervisor_id = "caen-{uuid.uuid4().hex[:8]}"\n[cnc]\nrest_api_port = {port}\n'
    )
    for name, text in SIMULATED.items():
        (configs / name).write_text(text)
    for name in ORIGINALS:
        shutil.copy(os.path.join(UPSTREAM, name), configs / f"original_{name}")
    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "on queue 'caen'" in check.stdout

    up = start_up(workdir, "--quiet")
    out = tmp_path / "out"
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_for(
            lambda: all(status(workdir).get(j, {}).get("state") == "running" for j in ("hv", "store_csv")),
            60,
            f"the HV job running (log: {workdir}/up.out)",
        )
        jobs = status(workdir)
        assert {jobs[j]["queue"] for j in ("hv", "counters", "registers")} == {"caen"}

        # The operator switches channel 0 on at 300.5 V through the REST API.
        for param, value in (("V0Set", 300.5), ("Pw", 1)):
            response = http.post(
                "/api/jobs/hv/messages",
                json={
                    "message_type": "DAQJobMessageCAENHVSetChParam",
                    "payload": {"slot": 0, "channel_list": [0], "param_name": param, "value": value},
                },
            )
            assert response.status_code == 200, response.text
            assert response.json()["sent_to"] == ["hv"]

        def channel(ch: str) -> list[dict[str, str]]:
            return [r for r in rows(out / "hv_ch_param.csv") if r["channel"] == ch]

        wait_for(lambda: any(float(r["VMon"]) == 300.5 for r in channel("0")), 30, "VMon reaching 300.5 V")
        vmon = [float(r["VMon"]) for r in channel("0")]
        ramp = [v for v in vmon if 0 < v < 300.5]
        assert len(ramp) >= 3, f"no ramp seen in VMon: {vmon}"  # 1.5 s at 200 V/s, a row every 0.2 s
        assert ramp == sorted(ramp)
        assert float(channel("0")[-1]["V0Set"]) == 300.5 and channel("0")[-1]["Pw"] == "1"
        assert {float(r["VMon"]) for r in channel("1")} == {0.0}, "the set reached another channel"

        counters = wait_for(
            lambda: rows(out / "counters_SEC_A.csv")[2:] and rows(out / "counters_SEC_A.csv"), 20, "rows"
        )
        assert list(counters[0]) == ["timestamp", "lemo_0", "lemo_1", "lemo_2", "lemo_3"]
        assert int(counters[-1]["lemo_0"]) > int(counters[0]["lemo_0"])
        registers = wait_for(lambda: rows(out / "registers.csv"), 20, "register rows")
        assert 35 <= int(registers[0]["ADC_ch_1_Temperature"]) <= 50

        def retried(name: str, what: str) -> bool:
            """Its error shown while it waits for its next run (after a first restart, but for the
            HV job, whose first restart waits 5 s, its restart_offset)."""
            job = status(workdir).get(f"original_{name[:-5]}", {})
            shown = what in (job.get("last_error") or "")
            again = job.get("restarts", 0) >= (0 if name == "caen_hv.toml" else 1)
            return shown and again and job.get("state") == "restart_scheduled"

        for name, what in ORIGINALS.items():
            wait_for(functools.partial(retried, name, what), 40, f"{name}'s error shown and retried")
        jobs = status(workdir)
        before = len(channel("0"))
        wait_for(lambda: len(channel("0")) > before + 2, 10, "HV rows still arriving beside the failing jobs")
        assert jobs["hv"]["state"] == "running" and jobs["hv"]["restarts"] == 0
        shown = json.dumps(jobs) + enrgdaq(workdir, "status").stdout
        logs = enrgdaq(workdir, "logs", "hv").stdout + enrgdaq(workdir, "logs", "counters").stdout
        assert SECRET not in shown and SECRET not in logs
    finally:
        http.close()
        code = stop_up(up)
    assert code == 0, "enrgdaq up did not stop cleanly"
    assert SECRET not in (tmp_path / "up.out").read_text()
