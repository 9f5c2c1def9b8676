"""`create` of a busybox bundle under docker 20.10's default seccomp profile (as pycontainerd converts it for
`runc spec`'s capabilities): pyrunc with a cold seccomp cache (miss), with a warm one (hit), without seccomp,
and runc with the profile. Alternating, `delete` after each (untimed); medians of wall and CPU time.

Usage: python bench/pyrunc_seccomp.py [N] [--pause SECONDS] [--baseline PYRUNC]
  default N=21, pause 0.15 s before each create; --baseline: another pyrunc (e.g. a build without the cache)
  timed with the profile too.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# bench/ itself is sys.path[0], where bench/pyrunc.py would shadow the pyrunc package
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

from bench.pyrunc import PYRUNC, timed  # noqa: E402
from pycontainerd import seccomp as docker_seccomp  # noqa: E402
from pyrunc import seccomp_cache  # noqa: E402
from tests.support import make_busybox_rootfs  # noqa: E402


def bundle(root: Path, name: str, seccomp: bool) -> Path:
    b = root / name
    b.mkdir()
    make_busybox_rootfs(b / "rootfs")
    subprocess.run(["runc", "spec"], cwd=b, check=True)
    doc = json.loads((b / "config.json").read_text())
    doc["process"]["terminal"] = False
    doc["process"]["args"] = ["/bin/true"]
    if seccomp:
        doc["linux"]["seccomp"] = docker_seccomp.to_oci(docker_seccomp.default_profile(),
                                                        doc["process"]["capabilities"]["bounding"])
    (b / "config.json").write_text(json.dumps(doc))
    return b


def main() -> None:
    args = sys.argv[1:]
    pause = 0.15
    if "--pause" in args:
        i = args.index("--pause")
        pause = float(args[i + 1])
        del args[i:i + 2]
    baseline = None
    if "--baseline" in args:
        i = args.index("--baseline")
        baseline = args[i + 1]
        del args[i:i + 2]
    n = int(args[0]) if args else 21
    tmp = Path(tempfile.mkdtemp(prefix="bench-seccomp-"))
    roots: dict[str, Path] = {}
    try:
        with_profile = bundle(tmp, "docker", True)
        plain = bundle(tmp, "plain", False)
        roots = {k: tmp / f"root-{k}" for k in ("miss", "hit", "none", "runc", "baseline")}
        cases = {
            "pyrunc miss": ([PYRUNC, "--root", str(roots["miss"])], with_profile),
            "pyrunc hit": ([PYRUNC, "--root", str(roots["hit"])], with_profile),
            "pyrunc no seccomp": ([PYRUNC, "--root", str(roots["none"])], plain),
            "runc": (["runc", "--root", str(roots["runc"])], with_profile),
        }
        if baseline:
            cases["baseline"] = ([baseline, "--root", str(roots["baseline"])], with_profile)
        # warm the hit root's cache (and the page cache) once
        for name, (rt, b) in cases.items():
            subprocess.run([*rt, "create", "-b", str(b), "warm"], check=True, stdout=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
            subprocess.run([*rt, "delete", "-f", "warm"], check=True)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        for i in range(n):
            for name, (rt, b) in cases.items():
                if name == "pyrunc miss":
                    shutil.rmtree(roots["miss"] / seccomp_cache.DIRNAME, ignore_errors=True)
                cid = f"b{i}"
                results[name].append(timed([*rt, "create", "-b", str(b), cid], pause))
                subprocess.run([*rt, "delete", "-f", cid], check=True)
        print(f"create, N={n}, pause {pause}s: median wall ms / median CPU ms (process + reaped children)")
        for name, rows in results.items():
            wall = statistics.median(r[0] for r in rows) * 1000
            cpu = statistics.median(r[1] for r in rows) * 1000
            print(f"  {name:18s} {wall:6.1f} ms  {cpu:6.1f} ms CPU")
    finally:
        for rt in (["runc"], [PYRUNC]):  # whatever is left after a failure
            for root in roots.values():
                if root.exists():
                    for d in root.iterdir():
                        if (d / "state.json").exists():
                            subprocess.run([*rt, "--root", str(root), "delete", "-f", d.name], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
