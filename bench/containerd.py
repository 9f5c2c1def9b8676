"""pycontainerd + pyctr vs Debian's containerd 1.6 + ctr, side by side in one run.

    .venv/bin/python bench/pycontainerd.py [--rounds 3] [--run-rounds 5] [--runtime PATH]

(a) pull + unpack of a ~300 MB image (busybox + 4 layers of random data, text and small files; built once
    and cached in bench/out/pycontainerd/image) from Debian's docker-registry on 127.0.0.1:
    `ctr -a SOCK images pull --plain-http REF` (ctr unpacks too) vs `pyctr -H SOCK pull REF`, alternating
    which goes first, each after os.sync() and with an empty store (ctr: `images rm --sync` + content prune;
    pycontainerd: a fresh daemon per round, its start not timed). Goal: pyctr ≤ 1.2× ctr.
(b) `pyctr run --rm IMG true` vs `ctr run --rm IMG ID true` (runc for ctr, --runtime for pycontainerd,
    pyrunc by default; then again with pycontainerd on runc, to tell the daemon's share from the
    runtime's). Goal: within 1.5×.
(c) apply_layer of the image's biggest layer hashing the compressed blob again vs blob_verified=True
    (what pycontainerd's unpack does since its content store verified the blob on download).
Both daemons run on private paths under a temp dir and are stopped by pid at the end; every process
left under those paths is killed by pid and every mount under them unmounted. Medians are printed.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out" / "pycontainerd"
IMAGE = OUT / "image"
VENV_BIN = REPO / ".venv" / "bin"
STEP_TIMEOUT = 300  # seconds for any one command: the whole run stays bounded


def build_bench_image() -> None:
    """busybox + 4 layers of 40 MB random, 60 MB text and 1500 small random files (as K's generator)."""
    from tests.pycontainerd.daemon_fixture import build_image
    from tests.support import make_busybox_rootfs

    if (IMAGE / "done").exists():
        return
    shutil.rmtree(IMAGE, ignore_errors=True)
    t = time.monotonic()
    src = IMAGE / "src"
    layers = [make_busybox_rootfs(src / "bb")]
    rnd = random.Random(1)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(3, 10)))
             for _ in range(5000)]
    for i in range(4):
        d = src / f"l{i}"
        (d / "data").mkdir(parents=True)
        (d / "data" / "random.bin").write_bytes(os.urandom(40 << 20))
        with open(d / "data" / "text.txt", "wb") as f:
            n = 0
            while n < (60 << 20):
                chunk = b"".join(b" ".join(rnd.choices(words, k=12)) + b"\n" for _ in range(1000))
                f.write(chunk)
                n += len(chunk)
        for j in range(1500):
            p = d / "small" / f"d{j % 30}" / f"f{j}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(rnd.randint(100, 20000)))
        layers.append(d)
    build_image(IMAGE / "layout", "v1", layers)
    shutil.rmtree(src)
    (IMAGE / "done").touch()
    print(f"built the bench image in {time.monotonic() - t:.0f}s", flush=True)


def image_size() -> int:
    return sum(p.stat().st_size for p in (IMAGE / "layout" / "blobs").rglob("*") if p.is_file())


class Containerd:
    """Debian's containerd on private paths (CRI off), stopped by pid."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "cd"
        self.dir.mkdir()
        self.sock = str(self.dir / "c.sock")
        cfg = subprocess.run(["containerd", "config", "default"], capture_output=True, text=True, check=True).stdout
        cfg = (cfg.replace('root = "/var/lib/containerd"', f'root = "{self.dir}/root"')
                  .replace('state = "/run/containerd"', f'state = "{self.dir}/state"')
                  .replace('address = "/run/containerd/containerd.sock"', f'address = "{self.sock}"')
                  .replace("disabled_plugins = []", 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'))
        (self.dir / "c.toml").write_text(cfg)
        with open(self.dir / "log", "wb") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(self.dir / "c.toml")], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while self.ctr("version").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {(self.dir / 'log').read_text()[-1000:]}")
            time.sleep(0.1)

    def ctr(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run(["ctr", "-a", self.sock, *args], capture_output=True, text=True, timeout=STEP_TIMEOUT)
        if check and r.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {r.stderr.strip()[-500:]}")
        return r

    def empty(self, ref: str) -> None:
        self.ctr("images", "rm", "--sync", ref)
        self.ctr("content", "prune", "references")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def timed(cmd: list[str]) -> float:
    os.sync()  # no step pays for the previous one's writeback
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    took = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}…: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}")
    return took


def pyctr(address: str, *args: str) -> list[str]:
    return [str(VENV_BIN / "pyctr"), "-H", address, *args]


def bench_apply(results: dict, rounds: int = 5) -> None:
    """(c) the cost of hashing a blob twice: apply_layer with expected_digest vs blob_verified=True, into
    tmpfs when there is one (disk writeback would drown the difference); wall and CPU seconds."""
    from pyoci.layer import apply_layer
    from pyoci.layout import Layout

    layout = Layout.open(IMAGE / "layout")
    manifest = layout.read_json(layout.resolve("v1"))
    biggest = max(manifest["layers"], key=lambda d: d["size"])
    path = layout.blob_path(biggest["digest"])
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="pcdb-apply-", dir=shm if shm.is_dir() else None))
    cases = [("apply, blob hashed", dict(expected_digest=biggest["digest"])),
             ("apply, blob_verified", dict(expected_digest=biggest["digest"], blob_verified=True))]
    try:
        for i in range(rounds):
            for label, kw in cases if i % 2 == 0 else cases[::-1]:
                d = base / f"{len(label)}-{i}"
                d.mkdir()
                with open(path, "rb") as f:
                    blob = io.BytesIO(f.read())  # from memory: the disk is not what is measured
                t, c = time.monotonic(), time.process_time()
                apply_layer(blob, d, whiteouts="overlay", **kw)
                results.setdefault(label, []).append(time.monotonic() - t)
                results.setdefault(label + " (cpu)", []).append(time.process_time() - c)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"(c) biggest layer: {biggest['size'] / 1e6:.0f} MB compressed, applied into {base.parent}", flush=True)


def ctr_run_ready() -> bool:
    r = subprocess.run(["git", "-C", str(REPO), "log", "--oneline", "--", "tools/pycontainerd/ctr"],
                       capture_output=True, text=True)
    return bool(r.stdout.strip()) and (VENV_BIN / "pyctr").exists()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--run-rounds", type=int, default=5)
    ap.add_argument("--runtime", default=str(VENV_BIN / "pyrunc") if (VENV_BIN / "pyrunc").exists() else "runc")
    args = ap.parse_args()
    for tool in ("containerd", "ctr", "docker-registry", "runc"):
        if not shutil.which(tool):
            print(f"bench/containerd: {tool} is not installed", file=sys.stderr)
            return 1

    import pytest

    from tests.pycontainerd.daemon_fixture import kill_leftovers, running_daemon, running_registry, unmount_under

    OUT.mkdir(parents=True, exist_ok=True)
    build_bench_image()
    print(f"image: {image_size() / 1e6:.0f} MB compressed, 5 layers; rounds {args.rounds}; pycontainerd runtime"
          f" {args.runtime}", flush=True)
    results: dict[str, list[float]] = {}
    base = Path(tempfile.mkdtemp(prefix="pcdb-", dir="/tmp"))  # short: socket paths must fit
    cd = None
    try:
        with running_registry(base) as reg:
            ref = reg.ref("bench/big", "v1")
            reg.push(IMAGE / "layout", "v1", "bench/big")
            cd = Containerd(base)
            # (a) pulls, alternating who goes first; each side starts from an empty store
            for rnd in range(args.rounds):
                with running_daemon(base / f"pcd{rnd}", runtime=args.runtime) as d:
                    sides = [("ctr pull", lambda: timed(["ctr", "-a", cd.sock, "images", "pull", "--plain-http",
                                                         ref])),
                             ("pyctr pull", lambda: timed(pyctr(d.address, "pull", ref)))]
                    if rnd % 2:
                        sides.reverse()
                    line = []
                    for label, run in sides:
                        took = run()
                        results.setdefault(label, []).append(took)
                        line.append(f"{label} {took:.2f}s")
                    cd.empty(ref)
                print(f"(a) round {rnd}: " + ", ".join(line), flush=True)
            # (b) run --rm true, on a pycontainerd with the image pulled (untimed) per runtime: the default
            # one for the goal, and runc (ctr's runtime) to tell the daemon's share from the runtime's
            if ctr_run_ready():
                cd.ctr("images", "pull", "--plain-http", ref, check=True)
                timed(["ctr", "-a", cd.sock, "run", "--rm", ref, "bench-warm", "true"])
                runtimes = [args.runtime] + [r for r in [shutil.which("runc") or "runc"] if r != args.runtime]
                for n, runtime in enumerate(runtimes):
                    suffix = "" if n == 0 else f" ({Path(runtime).name})"
                    with running_daemon(base / f"pcd-run{n}", runtime=runtime) as d:
                        timed(pyctr(d.address, "pull", ref))
                        timed(pyctr(d.address, "run", "--rm", ref, "true"))  # warm-up
                        for i in range(args.run_rounds):
                            sides = [("ctr run --rm", lambda: timed(["ctr", "-a", cd.sock, "run", "--rm", ref,
                                                                     f"bench-{n}-{i}", "true"])),
                                     ("pyctr run --rm" + suffix,
                                      lambda: timed(pyctr(d.address, "run", "--rm", ref, "true")))]
                            if i % 2:
                                sides.reverse()
                            for label, run in sides:
                                results.setdefault(label, []).append(run())
                        left = subprocess.run(pyctr(d.address, "ps", "-a", "-q"), capture_output=True, text=True)
                        if left.stdout.strip():
                            print(f"warning: pyctr run --rm left containers: {left.stdout.split()}", flush=True)
                cd.empty(ref)
            else:
                print("run: pyctr not ready", flush=True)
        bench_apply(results)
    except (Exception, pytest.fail.Exception) as e:  # the fixtures' helpers report with pytest.fail
        last = (str(e).strip().splitlines() or [""])[-1]
        print(f"bench/containerd: {type(e).__name__}: {last}", file=sys.stderr)
        return 1
    finally:
        if cd is not None:
            cd.stop()
        killed = kill_leftovers([str(base)])
        unmount_under([str(base)])
        shutil.rmtree(base, ignore_errors=True)
        with open("/proc/self/mounts") as f:
            mounted = [line.split()[1] for line in f if str(base) in line]
        print(f"cleanup: {len(killed)} stray processes killed, {len(mounted)} mounts left"
              + (f" ({mounted})" if mounted else ""), flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n{'step':<28}{'median':>10}  runs")
    for k, v in results.items():
        print(f"{k:<28}{med[k]:>9.2f}s  " + " ".join(f"{x:.2f}" for x in v))
    print()
    for ours, theirs, goal in (("pyctr pull", "ctr pull", 1.2), ("pyctr run --rm", "ctr run --rm", 1.5),
                               ("pyctr run --rm (runc)", "ctr run --rm", 1.5)):
        if ours in med and theirs in med:
            ratio = med[ours] / med[theirs]
            print(f"{ours} / {theirs}: {ratio:.2f}x (goal <= {goal}x: {'met' if ratio <= goal else 'NOT met'})")
    for suffix in ("", " (cpu)"):
        if "apply, blob hashed" + suffix in med:
            print(f"apply blob_verified / blob hashed{suffix}: "
                  f"{med['apply, blob_verified' + suffix] / med['apply, blob hashed' + suffix]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
