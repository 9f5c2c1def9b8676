"""What a step does to a rootfs view: RUN in a container (through the runc CLI contract: a bundle with
config.json, `<runtime> --root DIR run --bundle B ID`), COPY/ADD and WORKDIR as file operations.

RUN networking: `--network=default` and `host` share the host's network namespace (we have no
bridge); `--network=none` gets an empty network namespace. Mount points the runtime has to create
(for --mount targets, /proc, /dev, /sys on a bare rootfs) are removed again so they never end up in
the layer; secrets are bind-mounted read-only and are never part of any layer.
"""

from __future__ import annotations

import bz2
import fnmatch
import json
import lzma
import os
import secrets as _secrets
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from pyoci import runtime as _runtime
from pyoci.errors import OCIError

from .errors import BuildError

DOCKER_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
OUTPUT_TAIL = 64 * 1024


def find_runtime(name: str) -> str:
    """pyrunc (next to this interpreter, else on PATH), runc, or an explicit path."""
    if os.sep in name:
        if not os.access(name, os.X_OK):
            raise BuildError(f"runtime {name}: not an executable")
        return name
    if name == "pyrunc":
        sibling = os.path.join(os.path.dirname(sys.executable), "pyrunc")
        if os.access(sibling, os.X_OK):
            return sibling
    found = shutil.which(name)
    if not found:
        raise BuildError(f"runtime {name!r} not found on PATH")
    return found


# --- paths inside a rootfs ------------------------------------------------------------------------


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """`path` inside `root` with symlinks resolved as if `root` were `/` (never leaving it)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    cur: list[str] = []
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if cur:
                cur.pop()
            continue
        cand = os.path.join(root, *cur, p)
        if (parts or follow_last) and os.path.islink(cand):
            hops += 1
            if hops > 40:
                raise BuildError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(cand)
            if target.startswith("/"):
                cur = []
            parts = [x for x in target.split("/") if x not in ("", ".")] + parts
            continue
        cur.append(p)
    return os.path.join(root, *cur)


def mkdir_all(root: str, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> str:
    """mkdir -p inside the rootfs; created directories get mode/owner. Returns the host path."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done = "/"
    for p in parts:
        done = done.rstrip("/") + "/" + p
        host = resolve_in_root(root, done)
        if os.path.lexists(host) and not os.path.isdir(host):
            raise BuildError(f"cannot create directory {done}: a file is in the way")
        if not os.path.isdir(host):
            os.mkdir(host, mode)
            os.chmod(host, mode)
            os.lchown(host, uid, gid)
    return resolve_in_root(root, path)


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_chown(root: str, spec: str) -> tuple[int, int]:
    """COPY --chown: `user[:group]` names from the rootfs's /etc/passwd and /etc/group; a user alone
    means gid = uid (as docker)."""
    user, _, group = spec.partition(":")

    def lookup(name: str, db: str) -> int:
        if name.isdigit():
            return int(name)
        for e in _read_db(resolve_in_root(root, db)):
            if len(e) > 2 and e[0] == name and e[2].isdigit():
                return int(e[2])
        what = "user" if db.endswith("passwd") else "group"
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find {what} {name}: "
                         f"no such {what}")

    uid = lookup(user, "/etc/passwd")
    gid = lookup(group, "/etc/group") if group else uid
    return uid, gid


def parse_chmod(spec: str) -> int:
    try:
        mode = int(spec, 8)
    except ValueError:
        raise BuildError(f"invalid chmod parameter: {spec!r}: only octal modes are supported") from None
    if mode > 0o7777:
        raise BuildError(f"invalid chmod parameter: {spec!r}")
    return mode


# --- copying --------------------------------------------------------------------------------------


@dataclass
class CopyOptions:
    owner: tuple[int, int] | None = None  # None: keep the source's
    chmod: int | None = None


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_node(src: str, dst: str, st: os.stat_result, opts: CopyOptions, dirs: list[tuple[str, os.stat_result]]) -> None:
    uid, gid = opts.owner if opts.owner is not None else (st.st_uid, st.st_gid)
    mode = opts.chmod if opts.chmod is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
            _remove(dst)
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o700)
        os.lchown(dst, uid, gid)
        os.chmod(dst, mode)
        dirs.append((dst, st))
        return
    if os.path.lexists(dst):
        _remove(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, uid, gid)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.lchown(dst, uid, gid)
        os.chmod(dst, mode)
    else:
        os.mknod(dst, (st.st_mode & ~0o7777) | mode, st.st_rdev)
        os.lchown(dst, uid, gid)
    os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_paths(src_root: str, items: Iterable[str], dest_root: str, base: str, target: str,
               opts: CopyOptions) -> None:
    """Copy the source-relative paths `items` (a source and everything below it, parents first)
    to `target` (a host path inside the rootfs): `base` maps to `target`, the rest below it."""
    dirs: list[tuple[str, os.stat_result]] = []
    for rel in items:
        src = os.path.join(src_root, rel) if rel else src_root
        sub = rel[len(base):].lstrip("/") if base else rel
        dst = os.path.join(target, sub) if sub else target
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            continue
        if sub:
            parent = os.path.dirname(dst)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o755, exist_ok=True)
        _copy_node(src, dst, st, opts, dirs)
    for d, st in reversed(dirs):
        os.utime(d, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


def walk_tree(root: str, rel: str) -> Iterator[str]:
    """`rel` and everything below it in a rootfs (no filtering), parents first, sorted."""
    yield rel
    full = os.path.join(root, rel) if rel else root
    if os.path.isdir(full) and not os.path.islink(full):
        for name in sorted(os.listdir(full)):
            yield from walk_tree(root, f"{rel}/{name}" if rel else name)


def glob_tree(root: str, pattern: str) -> list[str]:
    """Paths in a rootfs (no .dockerignore) a COPY --from source names, wildcards per component."""
    clean = os.path.normpath("/" + pattern).lstrip("/")
    if clean in ("", "."):
        return [""]
    found = [""]
    for comp in clean.split("/"):
        nxt = []
        for base in found:
            full = resolve_in_root(root, "/" + base) if base else root
            if not any(c in comp for c in "*?["):
                cand = f"{base}/{comp}" if base else comp
                if os.path.lexists(os.path.join(full, comp)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(full))
            except OSError:
                continue
            nxt += [f"{base}/{n}" if base else n for n in names if fnmatch.fnmatchcase(n, comp)]
        found = nxt
        if not found:
            return []
    return found


# --- archives (ADD) -------------------------------------------------------------------------------


def archive_kind(path: str) -> str | None:
    """gzip | bz2 | xz | zstd | tar when `path` is a tar archive ADD should extract, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    kind = None
    if head.startswith(b"\x1f\x8b"):
        kind = "gzip"
    elif head.startswith(b"BZh"):
        kind = "bz2"
    elif head.startswith(b"\xfd7zXZ\x00"):
        kind = "xz"
    elif head.startswith(b"\x28\xb5\x2f\xfd"):
        kind = "zstd"
    elif len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if kind is None:
        return None
    try:  # compressed: only if it holds a tar
        with _open_decompressed(path, kind) as f:
            inner = f.read(512)
        return kind if len(inner) >= 262 and inner[257:262] == b"ustar" else None
    except Exception:  # noqa: BLE001 - a corrupt stream is simply not an archive to extract
        return None


def _open_decompressed(path: str, kind: str):
    if kind == "gzip":
        import gzip
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    return open(path, "rb")


def extract_archive(path: str, kind: str, dest: str) -> None:
    """ADD's local-tar extraction into `dest` (ownership kept, nothing written outside `dest`)."""
    with _open_decompressed(path, kind) as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r|") as tar:
                tar.extractall(dest, numeric_owner=True, filter="tar")
        except (tarfile.TarError, OSError) as e:
            raise BuildError(f"failed to extract {os.path.basename(path)}: {e}") from None


# --- RUN ------------------------------------------------------------------------------------------


@dataclass
class RunRequest:
    argv: list[str]
    env: list[str]
    cwd: str
    user: str
    network: str = "default"  # default | host | none
    mounts: list[dict] = field(default_factory=list)  # runtime-spec mounts, extra
    inline_files: list[tuple[str, str]] = field(default_factory=list)  # RUN heredoc scripts (/dev/pipes/...)


def _missing_parents(root: str, target: str) -> list[str]:
    """The path components of `target` that do not exist in the rootfs, shallowest first."""
    out = []
    cur = ""
    for p in [x for x in target.split("/") if x]:
        cur += "/" + p
        if not os.path.lexists(resolve_in_root(root, cur, follow_last=False)):
            out.append(cur)
    return out


def build_spec(rootfs: str, req: RunRequest) -> dict:
    spec = _runtime.default_spec()
    proc = spec["process"]
    proc["terminal"] = False
    proc["args"] = list(req.argv)
    proc["env"] = list(req.env)
    proc["cwd"] = req.cwd or "/"
    try:
        uid, gid, extra = _runtime.resolve_user(req.user, rootfs)
    except OCIError as e:
        raise BuildError(str(e)) from None
    proc["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    proc["capabilities"] = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}
    proc["noNewPrivileges"] = False
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = "buildkitsandbox"
    ns = [n for n in spec["linux"]["namespaces"] if n["type"] != "network" or req.network == "none"]
    spec["linux"]["namespaces"] = ns
    spec["linux"].pop("resources", None)
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"] + list(req.mounts)
    if req.network != "none":  # the host's name resolution, as BuildKit does for its bridge/host modes
        for f in ("/etc/resolv.conf", "/etc/hosts"):
            if os.path.exists(f) and os.path.isfile(resolve_in_root(rootfs, f)):
                spec["mounts"].append({"destination": f, "type": "bind", "source": f,
                                       "options": ["rbind", "ro"]})
    return spec


def run_container(runtime: str, state_dir: str, bundle: Path, rootfs: str, req: RunRequest,
                  on_output: Callable[[bytes], None]) -> tuple[int, bytes]:
    """Run the step's process; returns (exit code, tail of its combined output). The mount points the
    runtime creates are removed from the rootfs afterwards."""
    created: list[str] = []
    for dest in ["/proc", "/dev", "/sys", req.cwd or "/", *(m["destination"] for m in req.mounts)]:
        for p in _missing_parents(rootfs, dest):
            if p not in created:
                created.append(p)
    cwd_host = resolve_in_root(rootfs, req.cwd or "/")
    if not os.path.isdir(cwd_host):
        mkdir_all(rootfs, req.cwd)
    created = [p for p in created if not (req.cwd + "/").startswith(p + "/")]
    pipes_dir = None
    mounts = list(req.mounts)
    if req.inline_files:
        pipes_dir = bundle / "pipes"
        pipes_dir.mkdir()
        for path, data in req.inline_files:
            name = os.path.basename(path)
            (pipes_dir / name).write_text(data)
            os.chmod(pipes_dir / name, 0o755)
        mounts.append({"destination": "/dev/pipes", "type": "bind", "source": str(pipes_dir),
                       "options": ["rbind", "ro"]})
    req = RunRequest(req.argv, req.env, req.cwd, req.user, req.network, mounts, req.inline_files)
    spec = build_spec(rootfs, req)
    (bundle / "config.json").write_text(json.dumps(spec))
    cid = "build-" + _secrets.token_hex(8)
    tail = bytearray()
    try:
        proc = subprocess.Popen([runtime, "--root", state_dir, "run", "--bundle", str(bundle), cid],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=str(bundle))
    except OSError as e:
        raise BuildError(f"cannot start runtime {runtime}: {e.strerror or e}") from None
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            on_output(chunk)
            tail += chunk
            if len(tail) > OUTPUT_TAIL:
                del tail[:len(tail) - OUTPUT_TAIL]
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        subprocess.run([runtime, "--root", state_dir, "delete", "--force", cid], capture_output=True)
        raise
    finally:
        if proc.stdout:
            proc.stdout.close()
        for p in reversed(created):
            host = resolve_in_root(rootfs, p, follow_last=False)
            try:
                if os.path.isdir(host) and not os.path.islink(host):
                    os.rmdir(host)
                elif os.path.isfile(host) and os.path.getsize(host) == 0:
                    os.unlink(host)
            except OSError:
                pass  # the step put something there: keep it
    return code, bytes(tail)
