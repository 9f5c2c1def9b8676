"""Layer create/apply speed, pyoci vs umoci, side by side on one ~500 MB tree.

    .venv/bin/python bench/layers.py [--runs 3] [--size-mb 500]

The tree (many small files, some large ones half random / half compressible, symlinks, hard links) is
generated once under bench/out/layers-tree and reused. Each run, alternating ours/theirs:
  create: pyoci create_layer(tree, gzip)            vs  umoci insert --image L:t TREE /
  apply:  pyoci apply_layer(our blob, fresh dir)    vs  umoci unpack (an image whose only layer is that blob)
Both apply the very same blob. `umoci unpack` also writes its mtree manifest (it hashes every file):
that is part of what the command costs. Times are medians; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from pyoci.layer import GZIP_BACKEND, apply_layer, create_layer  # noqa: E402

OUT = REPO / "bench" / "out"
TREE = OUT / "layers-tree"


def generate_tree(size_mb: int) -> tuple[int, int]:
    """Build the tree once (a stamp file records its parameters); return (files, bytes)."""
    stamp = OUT / "layers-tree.json"
    if stamp.exists() and TREE.is_dir():
        meta = json.loads(stamp.read_text())
        if meta.get("size_mb") == size_mb:
            return meta["files"], meta["bytes"]
    shutil.rmtree(TREE, ignore_errors=True)
    rng = random.Random(20260101)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(4000)]

    def text(n: int) -> bytes:
        out, size = [], 0
        while size < n:
            w = rng.choice(words)
            out.append(w)
            size += len(w) + 1
        return b" ".join(out)[:n]

    budget = size_mb * 1024 * 1024
    files = total = 0
    # ~16% in small files (1-8 KiB), 8% in 1 MiB files, the rest in 32 MiB files
    small_budget, medium_budget = budget * 16 // 100, budget * 8 // 100
    d = 0
    while total < small_budget:
        sub = TREE / "usr" / "share" / f"pkg{d // 100:03d}" / f"d{d:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(50):
            n = rng.randint(1024, 8192)
            (sub / f"file{i:02d}.txt").write_bytes(text(n))
            files += 1
            total += n
        for i in range(5):
            (sub / f"link{i}").symlink_to(f"file{i:02d}.txt")
        for i in range(3):
            os.link(sub / f"file{i + 10:02d}.txt", sub / f"hard{i}")
        d += 1
    block = text(1 << 20)
    i = 0
    (TREE / "usr" / "lib").mkdir(parents=True, exist_ok=True)
    while total < small_budget + medium_budget:
        data = (rng.randbytes(1 << 19) + block[: 1 << 19]) if i % 2 else block
        (TREE / "usr" / "lib" / f"lib{i:03d}.so").write_bytes(data)
        files += 1
        total += len(data)
        i += 1
    (TREE / "opt" / "big").mkdir(parents=True, exist_ok=True)
    i = 0
    while total < budget:
        path = TREE / "opt" / "big" / f"blob{i:02d}.bin"
        with open(path, "wb") as f:
            for j in range(32):
                f.write(rng.randbytes(1 << 20) if (i + j) % 2 else block)
        files += 1
        total += 32 << 20
        i += 1
    os.link(TREE / "opt" / "big" / "blob00.bin", TREE / "opt" / "big" / "blob00.hardlink")
    (TREE / "bin").mkdir(exist_ok=True)
    (TREE / "bin" / "sh").symlink_to("/usr/lib/lib000.so")
    stamp.write_text(json.dumps({"size_mb": size_mb, "files": files, "bytes": total}))
    return files, total


def umoci(*args) -> None:
    proc = subprocess.run(["umoci", *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"umoci {' '.join(map(str, args))} failed: {proc.stderr.strip()}")


def fresh_layout(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    umoci("init", "--layout", path)
    umoci("new", "--image", f"{path}:t")


def image_with_blob(layout: Path, blob: Path, info) -> None:
    """An umoci-made image whose single layer is our blob (manifest/config edited as plain JSON)."""
    fresh_layout(layout)
    index = json.loads((layout / "index.json").read_text())
    mpath = layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(mpath.read_bytes())
    cpath = layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(cpath.read_bytes())
    shutil.copyfile(blob, layout / "blobs" / "sha256" / info.digest.encoded)
    manifest["layers"] = [info.descriptor()]
    config["rootfs"]["diff_ids"] = [str(info.diff_id)]

    def put(doc: dict) -> dict:
        data = json.dumps(doc).encode()
        digest = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    manifest["config"].update(put(config))
    index["manifests"][0].update(put(manifest))
    (layout / "index.json").write_text(json.dumps(index))


def _cpu() -> float:
    """CPU seconds (user+sys) of this process, all threads, plus of waited-for children (umoci)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn(); CPU time is the fairer number on a busy machine."""
    os.sync()  # start each measurement with no dirty pages left by the previous one
    c, t = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t, _cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=500)
    args = ap.parse_args()
    if shutil.which("umoci") is None:
        print("umoci is not installed (make bench installs the Debian peers)", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    files, total = generate_tree(args.size_mb)
    print(f"tree: {TREE} — {files} files, {total / 2**20:.0f} MiB (ready in {time.perf_counter() - t:.1f}s);"
          f" gzip backend: {GZIP_BACKEND}; cpus: {len(os.sched_getaffinity(0))}")
    work = OUT / "layers-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    ours_blob = work / "ours.tgz"
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in ("create-ours", "create-umoci", "apply-ours",
                                                                      "apply-umoci")}
    info = None
    sizes = {}
    for run in range(args.runs):
        # create: alternate which one goes first
        order = ["ours", "umoci"] if run % 2 == 0 else ["umoci", "ours"]
        for who in order:
            if who == "ours":
                holder = {}
                results["create-ours"].append(timed(lambda: holder.update(i=create_layer(TREE, ours_blob, "gzip"))))
                info = holder["i"]
                sizes["ours"] = info.size
            else:
                fresh_layout(work / "ins")
                results["create-umoci"].append(timed(lambda: umoci("insert", "--image", f"{work / 'ins'}:t",
                                                                   TREE, "/")))
                layers = [p for p in (work / "ins" / "blobs" / "sha256").iterdir() if p.stat().st_size > 1 << 20]
                sizes["umoci"] = max(p.stat().st_size for p in layers)
        image_with_blob(work / "img", ours_blob, info)
        for who in order:
            target = work / f"apply-{who}"
            shutil.rmtree(target, ignore_errors=True)
            if who == "ours":
                target.mkdir()
                results["apply-ours"].append(timed(lambda: apply_layer(ours_blob, target,
                                                                       expected_diff_id=info.diff_id,
                                                                       expected_digest=info.digest)))
            else:
                results["apply-umoci"].append(timed(lambda: umoci("unpack", "--image", f"{work / 'img'}:t",
                                                                  target)))
            shutil.rmtree(target, ignore_errors=True)
        print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1][0]:.2f}s (cpu {v[-1][1]:.2f}s)"
                                                          for k, v in results.items()), flush=True)
    wall = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    mib = total / 2**20
    print()
    print(f"median of {args.runs} runs, {mib:.0f} MiB tree, load average now {os.getloadavg()[0]:.1f}"
          f" on {len(os.sched_getaffinity(0))} cpus")
    print(f"{'operation':<16} {'pyoci':>9} {'umoci':>9} {'umoci/pyoci':>12}")
    for op in ("create", "apply"):
        for label, table in (("wall", wall), ("cpu", cpu)):
            o, u = table[f"{op}-ours"], table[f"{op}-umoci"]
            print(f"{op + ' ' + label:<16} {o:>8.2f}s {u:>8.2f}s {u / o:>11.2f}x"
                  + (f"   pyoci {mib / o:.0f} MiB/s, umoci {mib / u:.0f} MiB/s" if label == "wall" else ""))
    print(f"{'gzip blob':<16} {sizes['ours'] / 2**20:>7.1f}MB {sizes['umoci'] / 2**20:>7.1f}MB")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
