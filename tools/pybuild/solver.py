"""The solver: a BuildPlan to an image in the cache, step by step, stages in parallel.

Each stage starts from a snapshot (a chain of layers: scratch, a base image, or another stage's
result) and every RUN/COPY/ADD/WORKDIR adds at most one layer. A step's cache key is
sha256(parent key, the step as expanded, the content it reads, the build args it uses, platform,
mount identities, SOURCE_DATE_EPOCH): a hit skips the step (`CACHED`), a miss runs it on a fresh
view and records the result. Metadata steps only change the config (frontend-computed).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import posixpath
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Mapping

from pyoci import mediatypes as mt
from pyoci import platform as _platform
from pyoci import runtime as _runtime
from pyoci import schema as _schema
from pyoci.errors import OCIError
from pyoci.layer import create_layer
from pyoci.manifest import go_json

from . import ast
from .cache import BuildCache, Chain, Layer, StepResult
from .context import LocalContext, NamedContext
from .dockerignore import PatternMatcher
from .errors import BuildError, ContextError, DockerfileError, StepFailed, _go_quote
from .executor import (CopyOptions, RunRequest, archive_kind, copy_paths, extract_archive, find_runtime,
                       glob_tree, mkdir_all, parse_chmod, resolve_chown, resolve_in_root, run_container,
                       walk_tree)
from .frontend import BuildPlan, StagePlan, Step, history_entry, plan
from .images import Image, ImageResolver
from .parser import parse_file
from .progress import Progress, Vertex
from .snapshot import Snapshotter, View


@dataclass
class BuildOptions:
    context: str
    dockerfile: str | None = None  # default: CONTEXT/Dockerfile
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    no_cache: bool = False
    cache_dir: str = ""
    contexts: Mapping[str, NamedContext] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)  # id -> host file
    runtime: str = "pyrunc"
    epoch: int | None = None  # SOURCE_DATE_EPOCH


@dataclass
class StageState:
    key: str
    chain: Chain
    history: list[dict]


@dataclass
class BuildResult:
    plan: BuildPlan
    manifest: dict  # descriptor (in the cache layout)
    config: dict  # the image config document
    config_desc: dict
    chain: Chain
    cache: BuildCache


def _h(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def created_time(epoch: int | None) -> str:
    if epoch is not None:
        return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_from_env() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds")
    return int(value)


class Solver:
    def __init__(self, opts: BuildOptions, progress: Progress) -> None:
        self.opts = opts
        self.progress = progress
        self.cache = BuildCache(opts.cache_dir)
        self.cache.sweep()
        self.runtime = find_runtime(opts.runtime)
        self.dockerfile = opts.dockerfile or os.path.join(opts.context, "Dockerfile")
        self.resolver = ImageResolver(self.cache, opts.contexts, opts.platform)
        self.results: dict[int, StageState] = {}
        self.created = created_time(opts.epoch)
        self._named_local: dict[str, LocalContext] = {}
        self._lock = threading.Lock()
        self.snap: Snapshotter | None = None
        self.context: LocalContext | None = None
        self.plan: BuildPlan | None = None

    # -- the build ------------------------------------------------------------------------------
    def solve(self) -> BuildResult:
        v = self.progress.vertex(f"[internal] load build definition from {os.path.basename(self.dockerfile)}")
        try:
            size = os.path.getsize(self.dockerfile)
        except OSError as e:
            v.error("failed to read dockerfile")
            raise BuildError(f"failed to read dockerfile: open {self.dockerfile}: "
                             f"{(e.strerror or str(e)).lower()}") from None
        v.info(f"transferring dockerfile: {size}B done")
        df = parse_file(self.dockerfile)
        v.done()
        bp = plan(df, self.opts.target, dict(self.opts.build_args), self.opts.platform,
                  build_contexts=list(self.opts.contexts), resolve_config=self.resolver.config_for_base)
        self.plan = bp
        for w in bp.warnings:
            self.progress.message(f"WARNING: {w}" if not w.startswith("[Warning]") else w)
        for sp in bp.stages:  # BuildKit's metadata vertices for registry bases
            if sp.base.kind == "image":
                mv = self.progress.vertex(f"[internal] load metadata for {sp.from_name.split(' FROM ', 1)[-1]}")
                mv.done()
        v = self.progress.vertex("[internal] load .dockerignore")
        self.context = LocalContext(self.opts.context, self.dockerfile)
        ignore = os.path.join(self.opts.context, ".dockerignore")
        v.info(f"transferring context: {os.path.getsize(ignore) if os.path.isfile(ignore) else 2}B done")
        v.done()
        if bp.context_paths or any(st.keyword in ("COPY", "ADD") for sp in bp.stages for st in sp.steps):
            v = self.progress.vertex("[internal] load build context")
            v.info("transferring context: done")
            v.done()
        self.snap = Snapshotter(self.cache)
        for level in bp.levels():
            if len(level) == 1:
                self._run_stage(level[0])
                continue
            with ThreadPoolExecutor(max_workers=min(len(level), os.cpu_count() or 2)) as pool:
                futures = [pool.submit(self._run_stage, sp) for sp in level]
                errors = []
                for f in futures:
                    try:
                        f.result()
                    except BaseException as e:  # noqa: BLE001 - the first one is raised below
                        errors.append(e)
                if errors:
                    raise errors[0]
        return self._assemble(bp)

    def _run_stage(self, sp: StagePlan) -> None:
        key, chain, history = self._base_state(sp)
        for step in sp.steps:
            if step.empty_layer:
                entry = history_entry(step, self.created)
                if entry:
                    history.append(entry)
                continue
            v = self.progress.vertex(step.name)
            try:
                ident = self._identity(sp, step)
                key = _h("step", key, ident)
                res = None if self.opts.no_cache else self.cache.get(key)
                if res is not None:
                    v.cached()
                else:
                    res = self._execute(sp, step, chain, v)
                    self.cache.put(key, res)
                    v.done()
            except (StepFailed, DockerfileError) as e:
                if not v.closed:
                    v.error(e.detail if isinstance(e, DockerfileError) else str(e))
                raise
            except OCIError as e:  # BuildError and pyoci's: shown at the step's line, as BuildKit
                v.error(str(e))
                raise DockerfileError(self.dockerfile, step.line, str(e)) from None
            if res.layer is not None:
                chain = chain + (res.layer,)
            entry = history_entry(step, self.created)
            if entry is not None:
                if res.layer is None:
                    entry["empty_layer"] = True
                history.append(entry)
        with self._lock:
            self.results[sp.index] = StageState(key, chain, history)

    def _base_state(self, sp: StagePlan) -> tuple[str, Chain, list[dict]]:
        base = sp.base
        v = self.progress.vertex(sp.from_name) if sp.from_name else None
        try:
            if base.kind == "scratch":
                return _h("scratch", sp.platform), (), []
            if base.kind == "stage":
                r = self.results[base.stage]  # type: ignore[index]
                if v:
                    v.cached()
                return r.key, r.chain, list(r.history)
            img = self._base_image(base.kind, base.ref, base.platform)
            if img is None:  # a local directory context as the rootfs
                return self._dir_base(base.ref, sp)
            return _h("image", img.digest, sp.platform), img.chain, list(img.config.get("history") or [])
        finally:
            if v is not None and not v.closed:
                v.done()

    def _base_image(self, kind: str, ref: str, platform: str | None) -> Image | None:
        if kind == "image":
            return self.resolver.image(ref, platform)
        return self.resolver.context_image(ref, platform)

    def _dir_base(self, name: str, sp: StagePlan) -> tuple[str, Chain, list[dict]]:
        ctx = self._local(name)
        key = _h("dir", ctx.checksum([""], lambda s: ContextError(f"context {name} is empty")), self.opts.epoch)
        res = None if self.opts.no_cache else self.cache.get(key)
        if res is None:
            import tempfile

            fd, tmp = tempfile.mkstemp(prefix=".tmp-layer-", dir=self.cache.layout.path / "blobs")
            os.close(fd)
            try:
                info = create_layer(ctx.root, tmp, mtime=self.opts.epoch)
                with open(tmp, "rb") as f:
                    self.cache.layout.put_blob(f, info.digest, info.size)
            finally:
                os.unlink(tmp)
            res = StepResult(Layer(str(info.digest), str(info.diff_id), info.size, info.media_type))
            self.cache.put(key, res)
        assert res.layer is not None
        return key, (res.layer,), []

    def _local(self, name: str) -> LocalContext:
        with self._lock:
            if name not in self._named_local:
                nc = self.opts.contexts[name]
                self._named_local[name] = LocalContext(nc.path, main=False)
            return self._named_local[name]

    # -- cache keys -----------------------------------------------------------------------------
    def _missing(self, step: Step):
        def make(src: str) -> Exception:
            clean = posixpath.normpath("/" + src)
            return DockerfileError(self.dockerfile, step.line,
                                   f"failed to compute cache key: failed to calculate checksum of ref: "
                                   f"{_go_quote(clean)}: not found")
        return make

    def _source_identity(self, src: Any, srcs: list[str], step: Step) -> Any:
        if src is None or src.kind == "context":
            assert self.context is not None
            return ("context", self.context.checksum(srcs, self._missing(step)))
        if src.kind == "stage":
            return ("stage", self.results[src.stage].key)
        if src.kind == "image":
            return ("image", self.resolver.image(src.ref).digest)
        img = self.resolver.context_image(src.ref)
        if img is not None:
            return ("image", img.digest)
        return ("named", src.ref, self._local(src.ref).checksum(srcs, self._missing(step)))

    def _identity(self, sp: StagePlan, step: Step) -> Any:
        ins = step.expanded
        ident: dict[str, Any] = {
            "kw": step.keyword, "created_by": step.created_by, "argv": step.argv, "env": step.env,
            "workdir": step.workdir, "user": step.user, "dest": step.dest, "inline": step.inline_files,
            "args": dict(step.args_used), "platform": sp.platform, "epoch": self.opts.epoch,
        }
        if isinstance(ins, ast.Run):
            ident["network"] = ins.network or "default"
            mounts = []
            for m, msrc in step.mount_sources:
                mi: Any = repr(m)
                if m.type == "bind":
                    mi = (mi, self._source_identity(msrc, [m.source or "/"], step))
                mounts.append(mi)
            ident["mounts"] = mounts
        elif isinstance(ins, ast.Copy):
            srcs = [s for s in ins.srcs if not _is_url(s)]
            ident["srcs"] = list(ins.srcs)
            ident["copy"] = (ins.exclude, ins.parents, ins.chown, ins.chmod)
            if srcs:
                ident["source"] = self._source_identity(step.source, srcs, step)
            for s in ins.srcs:
                if s.startswith("file://"):
                    path = s[len("file://"):]
                    ident.setdefault("files", []).append(_file_digest(path, step, self.dockerfile))
        return ident

    # -- executing a step -----------------------------------------------------------------------
    def _execute(self, sp: StagePlan, step: Step, chain: Chain, v: Vertex) -> StepResult:
        assert self.snap is not None
        with self.snap.writable(chain) as view:
            if step.keyword == "RUN":
                self._run(sp, step, view, v)
            elif step.keyword in ("COPY", "ADD"):
                self._copy(step, view)
            elif step.keyword == "WORKDIR":
                owner = (0, 0)
                if step.user:  # BuildKit creates the WORKDIR as the current USER
                    try:
                        uid, gid, _ = _runtime.resolve_user(step.user, str(view.root))
                        owner = (uid, gid)
                    except OCIError:
                        pass
                mkdir_all(str(view.root), step.dest, 0o755, *owner)
            layer = self.snap.commit(view, self.opts.epoch)
        return StepResult(layer, empty=layer is None)

    def _stage_root(self, stack: ExitStack, src: Any) -> str:
        """A read-only rootfs of a COPY --from / mount from= source that is not a local dir."""
        assert self.snap is not None
        if src.kind == "stage":
            chain = self.results[src.stage].chain
        else:
            img = self._base_image("image" if src.kind == "image" else "context", src.ref, None)
            assert img is not None
            chain = img.chain
        return str(stack.enter_context(self.snap.readonly(chain)))

    def _run(self, sp: StagePlan, step: Step, view: View, v: Vertex) -> None:
        ins = step.expanded
        assert isinstance(ins, ast.Run)
        root = str(view.root)
        env = list(step.env)
        mounts: list[dict] = []
        with ExitStack() as stack:
            for m, msrc in step.mount_sources:
                target = m.target
                if m.type == "cache":
                    ident = m.id or target
                    d = self.cache.cache_mount_dir(f"{ident}|{m.from_}")
                    if not any(os.scandir(d)) and (m.uid is not None or m.gid is not None or m.mode is not None):
                        os.chown(d, m.uid or 0, m.gid or 0)
                        os.chmod(d, m.mode if m.mode is not None else 0o755)
                    if m.sharing == "locked":  # one writer at a time: wait for it
                        stack.enter_context(self.cache.lock("mount:" + ident))
                    elif m.sharing == "private" and not stack.enter_context(self.cache.try_lock("mount:" + ident)):
                        d = self.cache.tmpdir("cache-private-")  # in use: a fresh, throwaway dir
                        stack.callback(shutil.rmtree, d, True)
                    mounts.append({"destination": target, "type": "bind", "source": str(d),
                                   "options": ["rbind", "rw"]})
                elif m.type == "bind":
                    if msrc is None:
                        assert self.context is not None
                        src_root = self.context.root
                    elif msrc.kind == "named" and self.resolver.context_image(msrc.ref) is None:
                        src_root = self._local(msrc.ref).root
                    else:
                        src_root = self._stage_root(stack, msrc)
                    path = resolve_in_root(src_root, m.source or "/")
                    if not os.path.lexists(path):
                        raise DockerfileError(self.dockerfile, step.line,
                                              f"failed to compute cache key: {_go_quote(m.source or '/')}: not found")
                    if not m.readonly:  # writes are discarded: mount a scratch copy
                        tmp = self.cache.tmpdir("bind-")
                        stack.callback(shutil.rmtree, tmp, True)
                        subprocess.run(["cp", "-a", "--", path, str(tmp / "src")], check=True)
                        path = str(tmp / "src")
                    mounts.append({"destination": target, "type": "bind", "source": path,
                                   "options": ["rbind", "ro" if m.readonly else "rw"]})
                elif m.type == "secret":
                    sid = m.id or posixpath.basename(target or "")
                    src_file = self.opts.secrets.get(sid)
                    if src_file is None:
                        if m.required:
                            raise DockerfileError(self.dockerfile, step.line, f"secret {sid} not found")
                        continue
                    if m.env:
                        with open(src_file, errors="replace") as f:
                            env.append(f"{m.env}={f.read()}")
                    if target or not m.env:
                        mounts.append({"destination": target or f"/run/secrets/{sid}", "type": "bind",
                                       "source": os.path.abspath(src_file), "options": ["rbind", "ro"]})
                elif m.type == "tmpfs":
                    opts = ["nosuid", "nodev", "mode=1777"]
                    if m.size:
                        opts.append(f"size={m.size}")
                    mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts})
                else:
                    raise DockerfileError(self.dockerfile, step.line, f"not supported yet: RUN --mount=type={m.type}")
            bundle = self.cache.tmpdir("bundle-")
            stack.callback(shutil.rmtree, bundle, True)
            req = RunRequest(list(step.argv), env, step.workdir, step.user, ins.network or "default", mounts,
                             [(p, d) for p, d in step.inline_files])
            code, out = run_container(self.runtime, str(self.cache.root / "run"), bundle, root, req, v.log)
        if code != 0:
            msg = f"process {_go_quote(' '.join(step.argv))} did not complete successfully: exit code: {code}"
            v.error(msg)
            raise StepFailed(self.dockerfile, step.line, step.instruction.original, list(step.argv), code, out,
                             step)

    def _copy(self, step: Step, view: View) -> None:
        ins = step.expanded
        assert isinstance(ins, ast.Copy)
        is_add = isinstance(ins, ast.Add)
        root = str(view.root)
        owner = resolve_chown(root, ins.chown) if ins.chown else None
        chmod = parse_chmod(ins.chmod) if ins.chmod else None
        dir_owner = owner or (0, 0)
        src = step.source
        dest = step.dest
        with ExitStack() as stack:
            # (source root, matched rel, entries, default owner)
            items: list[tuple[str, str, list[str], tuple[int, int] | None, bool]] = []
            local: LocalContext | None = None
            if src is None or src.kind == "context":
                local = self.context
            elif src.kind == "named" and self.resolver.context_image(src.ref) is None:
                local = self._local(src.ref)
            for s in ins.srcs:
                if s.startswith("file://"):
                    p = s[len("file://"):]
                    items.append((os.path.dirname(p), os.path.basename(p), [os.path.basename(p)], (0, 0), True))
                    continue
                if _is_url(s):
                    raise DockerfileError(self.dockerfile, step.line,
                                          f"not supported yet: ADD {s}: remote URLs (no network)")
                if local is not None:
                    found = local.match(s)
                    if not found:
                        raise self._missing(step)(s)
                    for rel in found:
                        items.append((local.root, rel, list(local.entries(rel)), (0, 0), True))
                else:
                    src_root = self._stage_root(stack, src)
                    found = glob_tree(src_root, s)
                    if not found:
                        raise self._missing(step)(s)
                    for rel in found:
                        items.append((src_root, rel, list(walk_tree(src_root, rel)), None, False))
            count = len(items) + len(step.inline_files)
            into = dest.endswith("/") or count > 1 or ins.parents
            excl = PatternMatcher(ins.exclude) if ins.exclude else None
            for src_root, rel, entries, default_owner, is_local in items:
                opts = CopyOptions(owner or default_owner, chmod)
                full = os.path.join(src_root, rel) if rel else src_root
                is_dir = os.path.isdir(full) and not os.path.islink(full)
                if excl is not None:  # --exclude: patterns relative to the source being copied
                    if not is_dir and excl.matches_or_parent_matches(posixpath.basename(rel)):
                        continue
                    entries = [e for e in entries if e == rel or not excl.matches_or_parent_matches(
                        e[len(rel):].lstrip("/") if rel else e)]
                if ins.parents and rel:  # --parents: keep the source's path below the destination
                    parent_dir = posixpath.dirname(rel)
                    if parent_dir:
                        dest_rel = posixpath.join(dest, parent_dir) + "/"
                        mkdir_all(root, dest_rel, 0o755, *dir_owner)
                    else:
                        dest_rel = dest if dest.endswith("/") else dest + "/"
                    if is_dir:
                        target = mkdir_all(root, posixpath.join(dest_rel, posixpath.basename(rel)), 0o755, *dir_owner)
                        copy_paths(src_root, entries, root, rel, target, opts)
                    else:
                        target = os.path.join(mkdir_all(root, dest_rel, 0o755, *dir_owner), posixpath.basename(rel))
                        copy_paths(src_root, [rel], root, rel, target, opts)
                    continue
                if is_dir:
                    existed = os.path.isdir(resolve_in_root(root, dest))
                    target = mkdir_all(root, dest, 0o755, *dir_owner)
                    copy_paths(src_root, [e for e in entries if e != rel] if existed else entries, root, rel, target, opts)
                    continue
                if is_add and is_local and (kind := archive_kind(full)):
                    extract_archive(full, kind, mkdir_all(root, dest, 0o755, *dir_owner))
                    continue
                dest_host = resolve_in_root(root, dest)
                if into or os.path.isdir(dest_host):
                    target = os.path.join(mkdir_all(root, dest, 0o755, *dir_owner), posixpath.basename(rel))
                else:
                    mkdir_all(root, posixpath.dirname(dest.rstrip("/")) or "/", 0o755, *dir_owner)
                    target = resolve_in_root(root, dest, follow_last=False)
                copy_paths(src_root, [rel], root, rel, target, opts)
            for name, data in step.inline_files:
                if into or os.path.isdir(resolve_in_root(root, dest)):
                    target = os.path.join(mkdir_all(root, dest, 0o755, *dir_owner), name)
                else:
                    mkdir_all(root, posixpath.dirname(dest.rstrip("/")) or "/", 0o755, *dir_owner)
                    target = resolve_in_root(root, dest, follow_last=False)
                if os.path.lexists(target) and (os.path.isdir(target) and not os.path.islink(target)):
                    shutil.rmtree(target)
                elif os.path.lexists(target):
                    os.unlink(target)
                with open(target, "w") as f:
                    f.write(data)
                os.lchown(target, *(owner or (0, 0)))
                os.chmod(target, chmod if chmod is not None else 0o644)

    # -- the image ------------------------------------------------------------------------------
    def _assemble(self, bp: BuildPlan) -> BuildResult:
        sp = bp.target_stage
        st = self.results[sp.index]
        v = self.progress.vertex("exporting to image")
        plat = _platform.parse(sp.platform)
        cfg = {k: val for k, val in dict(sp.config).items() if val is not None and val != [] or k == "Env"}
        config: dict[str, Any] = {"created": self.created, "architecture": plat.architecture, "os": plat.os}
        if plat.variant:
            config["variant"] = plat.variant
        author = sp.steps[-1].author if sp.steps else ""
        if author:
            config["author"] = author
        config["config"] = cfg
        config["rootfs"] = {"type": "layers", "diff_ids": [l.diff_id for l in st.chain]}
        config["history"] = st.history
        problems = _schema.errors(config, "config")
        if problems:
            raise BuildError(f"image config does not validate: {problems[0]}")
        layout = self.cache.layout
        config_desc = layout.put_json(go_json(config), mt.OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc,
                    "layers": [l.descriptor() for l in st.chain]}
        problems = _schema.errors(manifest, "manifest")
        if problems:
            raise BuildError(f"image manifest does not validate: {problems[0]}")
        manifest_desc = layout.put_json(go_json(manifest), mt.OCI_MANIFEST)
        v.info("exporting layers done")
        v.info(f"exporting manifest {manifest_desc['digest']} done")
        v.info(f"exporting config {config_desc['digest']} done")
        v.done()
        return BuildResult(bp, manifest_desc, config, config_desc, st.chain, self.cache)


def _is_url(s: str) -> bool:
    return "://" in s or s.startswith("git@")


def _file_digest(path: str, step: Step, dockerfile: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise DockerfileError(dockerfile, step.line, f"failed to read {path}: {e.strerror}") from None
