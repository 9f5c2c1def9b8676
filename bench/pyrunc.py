"""pyrunc vs runc: `run` of /bin/true on a busybox bundle, and `create`, `start`, `delete` one by one (what
containerd's shim calls), alternating the two runtimes; medians and ratios.

Usage: python bench/pyrunc.py [N] [--pause SECONDS] [--only run|lifecycle]   (PYRUNC_BENCH_BIN: another pyrunc)
  N runs of each (default 21); --pause: idle time before every timed command (default 0.15 s).

The pause matters: the first cgroup.procs write after a quiet spell waits out an RCU grace period (7-20 ms here)
and for ~one grace period after a write the next ones are free, so back-to-back runs would let each runtime ride
on the other's warm kernel state.  A container start on an idle host pays it; so does every run here.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import make_busybox_rootfs  # noqa: E402

PYRUNC = os.environ.get("PYRUNC_BENCH_BIN") or str(Path(sys.executable).with_name("pyrunc"))  # override: compare builds
RUNTIMES = (("runc", "runc"), ("pyrunc", PYRUNC))


def bundle(root: Path) -> Path:
    b = root / "bundle"
    b.mkdir()
    make_busybox_rootfs(b / "rootfs")
    subprocess.run(["runc", "spec"], cwd=b, check=True)
    doc = json.loads((b / "config.json").read_text())
    doc["process"]["terminal"] = False
    doc["process"]["args"] = ["/bin/true"]
    (b / "config.json").write_text(json.dumps(doc))
    return b


def timed(argv: list[str], pause: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and everything it reaped: user + system)."""
    time.sleep(pause)
    # stderr to a file, not a pipe: a created container keeps the runtime's stdio until it is started
    with tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # microseconds (os.times counts 10 ms ticks)
        t = time.perf_counter()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        elapsed = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed: {err.read().decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def report(what: str, times: dict[str, list[float]], cpu: dict[str, list[float]] | None) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        extra = f"; CPU (user+sys, with children) median {statistics.median(cpu[k]) * 1000:.1f} ms" if cpu else ""
        print(f"{k:7s} {what:16s} median {med[k] * 1000:7.1f} ms  (min {min(v) * 1000:.1f}, "
              f"max {max(v) * 1000:.1f}, n={len(v)}){extra}")
    pairs = [p / r for p, r in zip(times["pyrunc"], times["runc"])]
    line = f"ratio pyrunc/runc {what}: {med['pyrunc'] / med['runc']:.2f}x wall"
    if cpu:
        line += f", {statistics.median(cpu['pyrunc']) / statistics.median(cpu['runc']):.2f}x CPU"
    print(f"{line}; median of per-round ratios {statistics.median(pairs):.2f}x")


def bench_run(tmp: Path, b: Path, n: int, pause: float) -> None:
    times: dict[str, list[float]] = {"runc": [], "pyrunc": []}
    cpu: dict[str, list[float]] = {"runc": [], "pyrunc": []}
    for i in range(n + 2):  # two warm-up rounds
        for name, exe in RUNTIMES:
            t, c = timed([exe, "--root", str(tmp / name), "run", "-b", str(b), f"bench-{name}-{os.getpid()}-{i}"],
                         pause)
            if i >= 2:
                times[name].append(t)
                cpu[name].append(c)
    report("run /bin/true", times, cpu)
    print("  (goal <= 1.5x)")


def bench_lifecycle(tmp: Path, b: Path, n: int, pause: float) -> None:
    """create, start, (the process exits), delete: each timed on its own, as a shim issues them."""
    steps = ("create", "start", "delete")
    times = {s: {"runc": [], "pyrunc": []} for s in steps}
    for i in range(n + 2):
        for name, exe in RUNTIMES:
            cid = f"bench-lc-{name}-{os.getpid()}-{i}"
            base = [exe, "--root", str(tmp / name)]
            t_create, _ = timed([*base, "create", "-b", str(b), cid], pause)
            t_start, _ = timed([*base, "start", cid], pause)
            deadline = time.monotonic() + 5
            while json.loads(subprocess.run([*base, "state", cid], stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL).stdout)["status"] != "stopped":
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: {cid} did not stop")
                time.sleep(0.01)
            t_delete, _ = timed([*base, "delete", cid], pause)
            if i >= 2:
                for s, t in zip(steps, (t_create, t_start, t_delete)):
                    times[s][name].append(t)
    for s in steps:
        report(s, times[s], None)
    total = {k: [sum(x) for x in zip(*(times[s][k] for s in steps))] for k in ("runc", "pyrunc")}
    report("create+start+delete", total, None)


def main(argv: list[str]) -> int:
    n, pause, only = 21, 0.15, None
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == "--pause":
            pause = float(rest.pop(0))
        elif a == "--only":
            only = rest.pop(0)
        else:
            n = int(a)
    # Python honours PYTHONDONTWRITEBYTECODE: make sure pyrunc's bytecode exists so we time runs, not compiles.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "tools" / "pyrunc")], stdout=subprocess.DEVNULL)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; pause {pause}s, n={n}")
    tmp = Path(tempfile.mkdtemp(prefix="pyrunc-bench-"))
    try:
        b = bundle(tmp)
        if only in (None, "run"):
            bench_run(tmp, b, n, pause)
        if only in (None, "lifecycle"):
            bench_lifecycle(tmp, b, n, pause)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
    finally:
        for name, exe in RUNTIMES:  # nothing left behind if a step failed
            out = subprocess.run([exe, "--root", str(tmp / name), "list", "-q"], capture_output=True, text=True)
            for cid in out.stdout.split():
                subprocess.run([exe, "--root", str(tmp / name), "delete", "-f", cid], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
