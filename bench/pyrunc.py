"""pyrunc vs runc: `run` of /bin/true on a busybox bundle, alternating the two, medians and the ratio.

Usage: python bench/pyrunc.py [N]   (N runs of each, default 21)
"""

from __future__ import annotations

import json
import os
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

PYRUNC = str(Path(sys.executable).with_name("pyrunc"))


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


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and everything it reaped: user + system)."""
    before = os.times()
    t = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    after = os.times()
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {p.stderr.decode().strip()}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return elapsed, cpu


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    # Python honours PYTHONDONTWRITEBYTECODE: make sure pyrunc's bytecode exists so we time runs, not compiles.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "tools" / "pyrunc")], stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="pyrunc-bench-"))
    try:
        b = bundle(tmp)
        times: dict[str, list[float]] = {"runc": [], "pyrunc": []}
        cpu: dict[str, list[float]] = {"runc": [], "pyrunc": []}
        for i in range(n + 2):  # two warm-up rounds
            for name, argv in (("runc", ["runc"]), ("pyrunc", [PYRUNC])):
                t, c = timed([*argv, "--root", str(tmp / name), "run", "-b", str(b), f"bench-{name}-{os.getpid()}-{i}"])
                if i >= 2:
                    times[name].append(t)
                    cpu[name].append(c)
        med = {k: statistics.median(v) for k, v in times.items()}
        cmed = {k: statistics.median(v) for k, v in cpu.items()}
        for k in ("runc", "pyrunc"):
            v = times[k]
            print(f"{k:7s} run /bin/true: median {med[k] * 1000:7.1f} ms  (min {min(v) * 1000:.1f}, "
                  f"max {max(v) * 1000:.1f}, n={len(v)}); CPU (user+sys, with children) median {cmed[k] * 1000:.1f} ms")
        ratio = med["pyrunc"] / med["runc"]
        print(f"ratio pyrunc/runc: {ratio:.2f}x wall (goal <= 1.5x), {cmed['pyrunc'] / cmed['runc']:.2f}x CPU")
        pairs = [p / r for p, r in zip(times["pyrunc"], times["runc"])]
        print(f"median of per-round ratios: {statistics.median(pairs):.2f}x")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
