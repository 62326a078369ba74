"""Memory of the README's example while it runs: every process of `enrgdaq up configs/`.

Runs `enrgdaq up configs/ --quiet` in a scratch copy of configs/, waits until
`enrgdaq status --json` shows every job running, lets it run steadily, then
reads RSS, PSS and USS of each process of the tree, grouped by role, and
stops it with SIGINT (target: exits within 10 s):

    python bench/memory.py [--steady 10] [--json]

RSS counts shared pages (the Python interpreter, libraries, pages shared by a
prefork pool with its parent) once per process, so the RSS total overstates
what the tree uses; PSS splits each shared page between its users and sums to
the real figure; USS is what a process alone holds (freed if it exits).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNING_TIMEOUT_SECONDS = 60.0
STOP_TARGET_SECONDS = 10.0
MIB = 1024 * 1024


def enrgdaq(*args: str) -> list[str]:
    """The `enrgdaq` command (its console script runs the same main)."""
    return [sys.executable, "-m", "enrgdaq.cli.main", *args]


def job_count(config_dir: str) -> int:
    return sum(1 for name in os.listdir(config_dir) if name.endswith(".toml") and name != "supervisor.toml")


def status(workdir: str) -> dict[str, object] | None:
    try:
        out = subprocess.run(
            enrgdaq("status", "--json"), cwd=workdir, capture_output=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    try:
        doc: dict[str, object] = json.loads(out.stdout)
    except json.JSONDecodeError:
        return None
    return doc


def wait_all_running(workdir: str, expected: int, proc: subprocess.Popen[bytes]) -> float:
    """Poll `enrgdaq status --json` until ``expected`` jobs are all running; returns seconds."""
    t0 = time.monotonic()
    deadline = t0 + RUNNING_TIMEOUT_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"enrgdaq up exited with {proc.returncode} before the jobs ran")
        doc = status(workdir)
        if doc is not None:
            jobs = doc.get("jobs")
            assert isinstance(jobs, list)
            last = [(j["unique_id"], j["state"]) for j in jobs]
            if len(jobs) >= expected and all(j["state"] == "running" for j in jobs):
                return time.monotonic() - t0
        time.sleep(0.5)
    raise SystemExit(f"jobs not all running within {RUNNING_TIMEOUT_SECONDS:.0f} s: {last}")


def role_of(child: psutil.Process) -> str:
    """The role of a direct child of `enrgdaq up`, from its command line."""
    cmd = child.cmdline()
    joined = " ".join(cmd)
    if cmd and os.path.basename(cmd[0]).startswith("redis-server"):
        return "redis"
    if "enrgdaq.local.launch" in joined:
        rest = cmd[cmd.index("enrgdaq.local.launch") + 1 :] if "enrgdaq.local.launch" in cmd else []
        if rest[:1] == ["beat"]:
            return "beat"
        if rest[:1] == ["worker"] and len(rest) > 1:
            return "supervisor worker" if rest[1] == "supervisor" else f"worker {rest[1]}"
    if "flower" in joined:
        return "flower"
    return f"other ({joined[:60]})"


def memory_of(proc: psutil.Process) -> dict[str, float | None]:
    try:
        info = proc.memory_full_info()
        return {
            "rss": info.rss / MIB,
            "pss": getattr(info, "pss", None) and info.pss / MIB,
            "uss": getattr(info, "uss", None) and info.uss / MIB,
        }
    except psutil.AccessDenied:
        return {"rss": proc.memory_info().rss / MIB, "pss": None, "uss": None}


def job_pids(workdir: str) -> dict[int, str]:
    """pid -> unique id of each running job, from `enrgdaq status --json`."""
    doc = status(workdir) or {}
    jobs = doc.get("jobs") or []
    assert isinstance(jobs, list)
    return {int(j["pid"]): str(j["unique_id"]) for j in jobs if j.get("pid")}


def measure(up: psutil.Process, jobs: dict[int, str]) -> list[dict[str, object]]:
    """One row per process of the tree: role, pid, name, rss/pss/uss in MiB."""
    rows: list[dict[str, object]] = []
    rows.append({"group": "enrgdaq up", "pid": up.pid, "process": "enrgdaq up", **memory_of(up)})
    for child in up.children():
        role = role_of(child)
        rows.append({"group": role, "pid": child.pid, "process": "main", **memory_of(child)})
        for grandchild in child.children(recursive=True):
            job = jobs.get(grandchild.pid)
            if job:
                name = f"pool child, job {job}"
            else:
                name = "pool child, ticks" if role == "supervisor worker" else "pool child, idle"
            rows.append({"group": role, "pid": grandchild.pid, "process": name, **memory_of(grandchild)})
    return rows


def _add(a: object, b: object) -> float | None:
    if a is None or b is None:
        return None
    assert isinstance(a, int | float) and isinstance(b, int | float)
    return float(a) + float(b)


def grouped(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Sums per group, in the order the groups first appear."""
    sums: dict[str, dict[str, object]] = {}
    for row in rows:
        group = str(row["group"])
        total = sums.setdefault(group, {"group": group, "processes": 0, "rss": 0.0, "pss": 0.0, "uss": 0.0})
        total["processes"] = _add(total["processes"], 1)
        for key in ("rss", "pss", "uss"):
            total[key] = _add(total[key], row[key])
    for total in sums.values():
        total["processes"] = int(total["processes"] or 0)  # type: ignore[call-overload]
    return list(sums.values())


def total_of(groups: list[dict[str, object]]) -> dict[str, object]:
    total: dict[str, object] = {"group": "total", "processes": 0, "rss": 0.0, "pss": 0.0, "uss": 0.0}
    for g in groups:
        for key in ("processes", "rss", "pss", "uss"):
            total[key] = _add(total[key], g[key])
    total["processes"] = int(total["processes"] or 0)  # type: ignore[call-overload]
    return total


def fmt(value: object) -> str:
    if value is None:
        return "n/a"
    assert isinstance(value, int | float)
    return f"{value:.1f}"


def print_table(result: dict[str, object]) -> None:
    groups = result["groups"]
    assert isinstance(groups, list)
    rows = [("group", "processes", "RSS MiB", "PSS MiB", "USS MiB")]
    for g in [*groups, result["total"]]:
        assert isinstance(g, dict)
        rows.append((str(g["group"]), str(g["processes"]), fmt(g["rss"]), fmt(g["pss"]), fmt(g["uss"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        if i == len(rows) - 1:
            print("  ".join("-" * w for w in widths))
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    per_process = result["rows"]
    assert isinstance(per_process, list)
    print("per process:")
    for r in per_process:
        print(
            f"  {r['group']:<18} {r['process']:<30} pid {r['pid']:<7} RSS {fmt(r['rss']):>6}  "
            f"PSS {fmt(r['pss']):>6}  USS {fmt(r['uss']):>6} MiB"
        )
    print(
        f"jobs running {result['running_after_s']:.1f} s after start (as `enrgdaq status --json` "
        f"saw it); measured after {result['steady_s']:.0f} s more of steady running"
    )
    ok = "ok" if result["stopped_in_time"] else "MISSED"
    print(
        f"stop (SIGINT -> exit of enrgdaq up): {fmt(result['stop_s'])} s, target "
        f"{STOP_TARGET_SECONDS:.0f} s: {ok}; exit code {result['exit_code']}; "
        f"processes left behind: {result['left_behind'] or 'none'}"
    )


def run(steady: float) -> dict[str, object]:
    workdir = tempfile.mkdtemp(prefix="enrgdaq-memory-")
    config_dir = os.path.join(workdir, "configs")
    shutil.copytree(os.path.join(REPO, "configs"), config_dir)
    proc: subprocess.Popen[bytes] | None = None
    tree: list[psutil.Process] = []
    try:
        proc = subprocess.Popen(
            enrgdaq("up", "configs/", "--quiet"),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running_after = wait_all_running(workdir, job_count(config_dir), proc)
        time.sleep(steady)
        up = psutil.Process(proc.pid)
        tree = [up, *up.children(recursive=True)]
        rows = measure(up, job_pids(workdir))
        groups = grouped(rows)
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            exit_code: int | None = proc.wait(STOP_TARGET_SECONDS)
            stop_s: float | None = time.monotonic() - t_stop
        except subprocess.TimeoutExpired:
            exit_code, stop_s = None, None
        left = [p.pid for p in tree[1:] if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        return {
            "rows": rows,
            "groups": groups,
            "total": total_of(groups),
            "running_after_s": round(running_after, 2),
            "steady_s": steady,
            "stop_s": None if stop_s is None else round(stop_s, 2),
            "stopped_in_time": stop_s is not None and stop_s <= STOP_TARGET_SECONDS,
            "exit_code": exit_code,
            "left_behind": left,
            "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]},
        }
    finally:
        # Whatever happened: nothing of this run may outlive it.
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for p in tree[1:]:
            try:
                if p.is_running():
                    p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(tree[1:], timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steady", type=float, default=10.0, help="seconds of steady running before measuring (default 10)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.steady)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
