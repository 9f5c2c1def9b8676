"""pybuild vs buildah (vfs storage, chroot isolation) on the same multi-stage Dockerfile.

    .venv/bin/python bench/pybuild.py [--runs 3] [--files 300]

A small generated context (source files in a few directories) and a busybox base image (an OCI
layout, given to pybuild as `--build-context base=oci-layout://…` and to buildah as `FROM oci:…`).
Each run, alternating ours/theirs:
  cold:   a fresh cache dir / a fresh buildah storage (both import the base image)
  cached: the same build again on the warm cache / warm storage (`buildah bud --layers`)
Times are wall-clock medians; the goals are cold <= 1.0x buildah and cached <= 0.5x buildah.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

OUT = REPO / "bench" / "out" / "pybuild"

DOCKERFILE = """\
ARG BASE=base
FROM $BASE AS build
WORKDIR /src
COPY src/ ./
RUN find . -type f | sort > /manifest.txt && cat $(find . -name '*.c' | sort) | md5sum > /sum.txt
RUN mkdir -p /out && tar -cf /out/src.tar . && wc -c < /out/src.tar > /out/size

FROM $BASE AS docs
COPY docs/ /docs/
RUN ls /docs | wc -l > /docs.count

FROM $BASE
COPY --from=build /out/ /opt/app/
COPY --from=build /sum.txt /manifest.txt /opt/meta/
COPY --from=docs /docs.count /opt/meta/
COPY config/ /etc/app/
RUN adduser -D -H app 2>/dev/null || true; echo ready > /opt/app/ready
USER app
CMD ["cat", "/opt/app/ready"]
"""


def generate_context(ctx: Path, files: int) -> None:
    rng = random.Random(20261123)
    shutil.rmtree(ctx, ignore_errors=True)
    (ctx / "src").mkdir(parents=True)
    for i in range(files):
        d = ctx / "src" / f"mod{i % 12}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.c").write_text("".join(f"int f{i}_{j}(void) {{ return {rng.randint(0, 1 << 30)}; }}\n"
                                           for j in range(rng.randint(5, 60))))
    (ctx / "docs").mkdir()
    for i in range(40):
        (ctx / "docs" / f"page{i}.md").write_text(f"# page {i}\n" + "text " * rng.randint(10, 400))
    (ctx / "config").mkdir()
    (ctx / "config" / "app.conf").write_text("key=value\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)


def make_base(path: Path) -> None:
    from pyoci.image import build_from_rootfs
    from pyoci.layout import Layout
    from tests.support import make_busybox_rootfs

    if (path / "index.json").exists():
        return
    rootfs = make_busybox_rootfs(OUT / "base-rootfs")
    build_from_rootfs(Layout.init(path), rootfs, "latest", epoch=1700000000,
                      container_config={"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]})


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{p.stderr[-3000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=300)
    args = ap.parse_args()
    if not shutil.which("buildah"):
        sys.exit("buildah is not installed (apt-get install buildah)")
    OUT.mkdir(parents=True, exist_ok=True)
    ctx, base = OUT / "ctx", OUT / "base"
    generate_context(ctx, args.files)
    make_base(base)
    pybuild = [str(REPO / ".venv" / "bin" / "pybuild"), "build", "--progress", "plain",
               "--build-context", f"base=oci-layout://{base}:latest"]
    times: dict[str, list[float]] = {k: [] for k in ("ours-cold", "ours-cached", "buildah-cold", "buildah-cached")}
    for run in range(args.runs):
        for who in (("ours", "buildah") if run % 2 == 0 else ("buildah", "ours")):
            work = OUT / f"work-{who}"
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)])
            work.mkdir()
            if who == "ours":
                cmd = [*pybuild, "--cache-dir", str(work / "cache"), str(ctx)]
            else:
                cmd = ["buildah", "--root", str(work / "root"), "--runroot", str(work / "run"), "--storage-driver",
                       "vfs", "bud", "--layers", "--isolation", "chroot", "--build-arg", f"BASE=oci:{base}:latest",
                       "-t", "bench", str(ctx)]
            times[f"{who}-cold"].append(timed(cmd))
            times[f"{who}-cached"].append(timed(cmd))
            if who == "buildah":
                subprocess.run(["buildah", "--root", str(work / "root"), "--runroot", str(work / "run"),
                                "--storage-driver", "vfs", "rmi", "--all", "--force"], capture_output=True)
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'':8} {'pybuild':>9} {'buildah':>9} {'ratio':>7}")
    for phase, goal in (("cold", 1.0), ("cached", 0.5)):
        ours, theirs = med[f"ours-{phase}"], med[f"buildah-{phase}"]
        ratio = ours / theirs
        print(f"{phase:8} {ours:8.2f}s {theirs:8.2f}s {ratio:6.2f}x  (goal <= {goal}x: "
              f"{'met' if ratio <= goal else 'NOT met'})")


if __name__ == "__main__":
    main()
