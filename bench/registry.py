"""pyregistry vs Distribution (Debian's docker-registry), side by side on 127.0.0.1 in one run.

    .venv/bin/python bench/registry.py [--runs 3] [--size-mb 200] [--chunk-mb 10] [--seconds 5]

Both servers run without auth on their own storage under bench/out/registry. Each run, alternating which
server goes first, measures for each:
  PUT mono     POST an upload, then one `curl -T` PUT of the whole blob with ?digest=      (MB/s)
  PUT chunked  POST, PATCH chunks of --chunk-mb with Content-Range, then PUT ?digest=      (MB/s)
  PUT streamed POST, one PATCH with `Transfer-Encoding: chunked` (no Content-Length), PUT ?digest=
               -- how skopeo and the docker CLI push layers                                  (MB/s)
  GET          `curl -o /dev/null` of the blob just pushed                                   (MB/s)
  manifest     GET of a tagged manifest, 32 connections: `wrk -t1 -c32 -d<seconds>s`        (req/s)
               (without wrk: an aiohttp loop bounded to 20000 requests or <seconds>)
Every blob is fresh (its first bytes differ per run), so neither server can deduplicate; each step starts
after an os.sync(), so no step pays for the previous one's page-cache writeback. The client
is curl/wrk for both, so the client's cost is the same on both sides. Medians are printed in a table
with pyregistry/Distribution ratios against the goals (PUT ≥ 1.5×, GET ≥ 0.9×, manifest ≥ 1.5×), then
the servers' own CPU time per operation (from /proc/PID/stat), which other load on a shared machine
distorts far less than the wall-clock rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "registry"
GOALS = {"PUT mono": 1.5, "PUT chunked": 1.5, "PUT streamed": 1.5, "GET": 0.9, "manifest": 1.5}
UNITS = {"PUT mono": "MB/s", "PUT chunked": "MB/s", "PUT streamed": "MB/s", "GET": "MB/s", "manifest": "req/s"}
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: Path, port: int) -> str:
    return ("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: bench\n")


@contextlib.contextmanager
def server(name: str, workdir: Path) -> Iterator[tuple[str, int]]:
    """Start one registry; yields its base URL and pid; stops it by pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(_config(root, port))
    if name == "distribution":
        exe = shutil.which("docker-registry")
        if exe is None:
            sys.exit("docker-registry is not installed (make peers installs it)")
        cmd = [exe, "serve", str(config)]
    else:
        cmd = [sys.executable, "-c", "import sys; from pyregistry.cli import main; sys.exit(main())",
               "serve", "--config", str(config)]
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                sys.exit(f"{name} exited: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/v2/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"{name} did not start")
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


# --- the HTTP steps (curl for bodies, urllib for the small control requests) ---------------------------------


def _request(method: str, url: str, data: bytes = b"", headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data if method in ("PUT", "POST", "PATCH") else None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def _abs(base: str, location: str) -> str:
    return location if location.startswith("http") else base + location


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def _curl(*args: str) -> str:
    # no `Expect: 100-continue` round trip before each body
    proc = subprocess.run(["curl", "-s", "-S", "-H", "Expect:", *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _start_upload(base: str, repo: str) -> str:
    status, headers = _request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    if status != 202:
        raise RuntimeError(f"POST upload: HTTP {status}")
    return _abs(base, headers["Location"])


def put_mono(base: str, repo: str, path: Path, digest: str) -> float:
    t0 = time.perf_counter()
    location = _start_upload(base, repo)
    code = _curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-T", str(path),
                 "-H", "Content-Type: application/octet-stream", _with_query(location, digest=digest))
    elapsed = time.perf_counter() - t0
    if code != "201":
        raise RuntimeError(f"monolithic PUT: HTTP {code}")
    return elapsed


def put_chunked(base: str, repo: str, chunks: list[Path], digest: str) -> float:
    t0 = time.perf_counter()
    location = _start_upload(base, repo)
    offset = 0
    for chunk in chunks:
        size = chunk.stat().st_size
        out = _curl("-D", "-", "-o", "/dev/null", "-X", "PATCH", "-T", str(chunk),
                    "-H", "Content-Type: application/octet-stream",
                    "-H", f"Content-Range: {offset}-{offset + size - 1}", location)
        status = int(out.split()[1])
        if status != 202:
            raise RuntimeError(f"PATCH at {offset}: HTTP {status}")
        location = _abs(base, re.search(r"(?im)^location:\s*(\S+)", out).group(1))
        offset += size
    status, _ = _request("PUT", _with_query(location, digest=digest), headers={"Content-Length": "0"})
    elapsed = time.perf_counter() - t0
    if status != 201:
        raise RuntimeError(f"closing PUT: HTTP {status}")
    return elapsed


def put_streamed(base: str, repo: str, path: Path, digest: str) -> float:
    t0 = time.perf_counter()
    location = _start_upload(base, repo)
    out = _curl("-D", "-", "-o", "/dev/null", "-X", "PATCH", "-T", str(path), "-H", "Transfer-Encoding: chunked",
                "-H", "Content-Type: application/octet-stream", location)
    status = int(out.split()[1])
    if status != 202:
        raise RuntimeError(f"streamed PATCH: HTTP {status}")
    location = _abs(base, re.search(r"(?im)^location:\s*(\S+)", out).group(1))
    status, _ = _request("PUT", _with_query(location, digest=digest), headers={"Content-Length": "0"})
    elapsed = time.perf_counter() - t0
    if status != 201:
        raise RuntimeError(f"closing PUT: HTTP {status}")
    return elapsed


def get_blob(base: str, repo: str, digest: str, size: int) -> float:
    t0 = time.perf_counter()
    out = _curl("-o", "/dev/null", "-w", "%{http_code} %{size_download}", f"{base}/v2/{repo}/blobs/{digest}")
    elapsed = time.perf_counter() - t0
    if out.split() != ["200", str(size)]:
        raise RuntimeError(f"GET blob: {out}")
    return elapsed


def push_image(base: str, repo: str, tag: str) -> str:
    """A small image (config, one layer, manifest) for the manifest GET loop; returns the manifest digest."""
    def blob(data: bytes) -> dict:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _ = _request("PUT", _with_query(_start_upload(base, repo), digest=d), data,
                             {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise RuntimeError(f"blob PUT: HTTP {status}")
        return {"digest": d, "size": len(data)}

    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    cfg = blob(config.encode())
    layer = blob(os.urandom(4096))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_ACCEPT,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]},
                          indent=2).encode()
    status, headers = _request("PUT", f"{base}/v2/{repo}/manifests/{tag}", manifest,
                               {"Content-Type": MANIFEST_ACCEPT})
    if status != 201:
        raise RuntimeError(f"manifest PUT: HTTP {status}")
    return headers.get("Docker-Content-Digest", "")


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process, all its threads (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def manifest_rps(url: str, seconds: float, connections: int) -> tuple[float, int]:
    """(requests per second, requests made)."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "-H", f"Accept: {MANIFEST_ACCEPT}",
                              url], capture_output=True, text=True, timeout=seconds + 60).stdout
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        n = re.search(r"(\d+) requests in", out)
        bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        if not m or not n or bad:
            raise RuntimeError(f"wrk: {out}")
        return float(m.group(1)), int(n.group(1))
    return asyncio.run(_aiohttp_rps(url, seconds, connections))


async def _aiohttp_rps(url: str, seconds: float, connections: int, max_requests: int = 20000
                       ) -> tuple[float, int]:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def worker() -> None:
            nonlocal done
            while done < max_requests and time.perf_counter() < deadline:
                async with session.get(url, headers={"Accept": MANIFEST_ACCEPT}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"manifest GET: HTTP {resp.status}")
                done += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.perf_counter() - t0), done


# --- data ----------------------------------------------------------------------------------------------------


def base_data(size_mb: int) -> bytes:
    path = OUT / f"blob-{size_mb}mb.bin"
    if not path.exists() or path.stat().st_size != size_mb << 20:
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size_mb << 20))
    return path.read_bytes()


def variant(base: bytes, tag: str, workdir: Path, chunk_mb: int) -> tuple[Path, list[Path], str]:
    """A fresh blob (its first bytes are `tag`): the whole file, its chunk files and its digest."""
    head = hashlib.sha256(tag.encode()).digest()
    data = head + base[len(head):]
    path = workdir / f"{tag}.bin"
    path.write_bytes(data)
    step = chunk_mb << 20
    chunks = []
    for i in range(0, len(data), step):
        c = workdir / f"{tag}.part{i // step:04d}"
        c.write_bytes(data[i:i + step])
        chunks.append(c)
    return path, chunks, "sha256:" + hashlib.sha256(data).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--chunk-mb", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each manifest GET load")
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed")
    sys.path.insert(0, str(REPO / "tools"))
    base = base_data(args.size_mb)
    work = OUT / f"run-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    names = ("pyregistry", "distribution")
    results: dict[str, dict[str, list[float]]] = {n: {k: [] for k in GOALS} for n in names}
    # Server CPU seconds per operation (per 1000 manifest GETs): a measure the load of a shared machine
    # does not distort the way it distorts wall-clock rates.
    cpu: dict[str, dict[str, list[float]]] = {n: {k: [] for k in GOALS} for n in names}
    size = len(base)
    try:
        with server("pyregistry", work / "pyregistry") as (py_url, py_pid), \
                server("distribution", work / "distribution") as (d_url, d_pid):
            urls = {"pyregistry": py_url, "distribution": d_url}
            pids = {"pyregistry": py_pid, "distribution": d_pid}
            manifest_urls = {}
            for n in names:
                digest = push_image(urls[n], "bench/small", "latest")
                manifest_urls[n] = f"{urls[n]}/v2/bench/small/manifests/latest"
                if not digest:
                    raise RuntimeError(f"{n}: no Docker-Content-Digest on manifest PUT")
            tmp = work / "data"
            tmp.mkdir()
            for run in range(args.runs):
                mono, _, mono_digest = variant(base, f"mono-{run}", tmp, args.chunk_mb)
                _, chunks, chunk_digest = variant(base, f"chunk-{run}", tmp, args.chunk_mb)
                streamed, _, streamed_digest = variant(base, f"stream-{run}", tmp, args.size_mb)
                order = names if run % 2 == 0 else names[::-1]
                for n in order:
                    url, pid = urls[n], pids[n]
                    steps = {
                        "PUT mono": lambda: (size / put_mono(url, "bench/big", mono, mono_digest) / 1e6, 1),
                        "PUT chunked": lambda: (size / put_chunked(url, "bench/big", chunks, chunk_digest) / 1e6, 1),
                        "PUT streamed": lambda: (size / put_streamed(url, "bench/big", streamed, streamed_digest)
                                                 / 1e6, 1),
                        "GET": lambda: (size / get_blob(url, "bench/big", mono_digest, size) / 1e6, 1),
                        "manifest": lambda: (lambda r: (r[0], r[1] / 1000))(
                            manifest_rps(manifest_urls[n], args.seconds, args.connections)),
                    }
                    for k, step in steps.items():
                        # no dirty pages left over from the step before (the last 200 MB PUT's writeback
                        # would otherwise land on the next step, penalising whichever server wrote faster)
                        os.sync()
                        c0 = cpu_seconds(pid)
                        rate, units = step()
                        results[n][k].append(rate)
                        cpu[n][k].append((cpu_seconds(pid) - c0) / units)
                    print(f"run {run + 1}/{args.runs} {n:12s} " + "  ".join(
                        f"{k} {results[n][k][-1]:.0f} ({cpu[n][k][-1]:.2f}s)" for k in GOALS), flush=True)
                for p in tmp.iterdir():
                    p.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("(per run: rate, and in parentheses the server's CPU seconds for it)\n")
    print(f"{'metric':14s} {'pyregistry':>12s} {'distribution':>13s} {'ratio':>7s} {'goal':>6s}  verdict")
    for k, goal in GOALS.items():
        py, dist = statistics.median(results["pyregistry"][k]), statistics.median(results["distribution"][k])
        ratio = py / dist if dist else float("inf")
        ok = ratio >= goal
        verdict = "ok" if ok else "BELOW GOAL"
        print(f"{k + ' ' + UNITS[k]:14s} {py:12.0f} {dist:13.0f} {ratio:6.2f}x {goal:5.1f}x  {verdict}")
    print(f"\n{'server CPU s':14s} {'pyregistry':>12s} {'distribution':>13s} {'dist/py':>7s}"
          f"   (per {args.size_mb} MB blob; per 1000 manifest GETs)")
    for k in GOALS:
        py, dist = statistics.median(cpu["pyregistry"][k]), statistics.median(cpu["distribution"][k])
        print(f"{k:14s} {py:12.3f} {dist:13.3f} {dist / py if py else float('inf'):6.2f}x")
    print(f"\n{args.size_mb} MB blob, chunks of {args.chunk_mb} MB, manifest load {args.connections} connections "
          f"x {args.seconds:g}s ({'wrk' if shutil.which('wrk') else 'aiohttp loop'}), medians of {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
