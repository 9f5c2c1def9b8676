"""The semantic pass: a parsed Dockerfile, a target, build args and a platform to a `BuildPlan`.

Does what BuildKit's dockerfile2llb does before it emits LLB: resolves stages (by name or index),
`--from` references (stage, named `--build-context`, or image), global and per-stage ARG scoping with
the predefined platform/proxy args, variable expansion in exactly the instructions Docker expands,
ONBUILD triggers of the base, the image config after each step, the history line (`created_by`,
`empty_layer`) docker writes, and the stages the target needs in dependency order.
Pure: nothing here touches the filesystem or the network; base image configs come from a callback.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from pyoci import platform as _platform
from pyoci import reference as _reference
from pyoci.errors import OCIError
from pyoci.goduration import format as format_go_duration

from . import ast
from .errors import DockerfileError, _go_quote
from .expand import ExpandError, ShellLex
from .parser import (
    _ParseError,
    suggest,
    chomp_heredoc,
    parse_go_duration,
    parse_heredoc,
    parse_instruction_line,
    parse_mount,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")
HISTORY_COMMENT = "buildkit.dockerfile.v0"

# Usable without an ARG declaration, passed to RUN, never written to history (docker's builtin args).
PROXY_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})
PLATFORM_ARGS = (
    "BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
    "TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE",
)

# A base image's config as a callback: (Base) -> the OCI image config JSON ({"config": {...}, ...}) or None.
ConfigResolver = Callable[["Base"], "Mapping[str, Any] | None"]


@dataclass(frozen=True)
class Base:
    """What a stage starts from. kind: scratch | stage | image | context.
    `ref` is the expanded image reference (image), the --build-context name (context), or ""."""

    kind: str
    ref: str = ""
    stage: int | None = None
    platform: str | None = None  # expanded FROM --platform, None when not given

    def __str__(self) -> str:
        if self.kind == "stage":
            return f"stage {self.stage}"
        return self.ref or self.kind


@dataclass(frozen=True)
class Source:
    """Where a COPY/ADD reads from, or a RUN --mount from=: context | stage | image | named."""

    kind: str
    ref: str = ""
    stage: int | None = None


@dataclass(frozen=True)
class Step:
    """One instruction of a stage, with everything the executor and the cache need.

    `instruction` is the typed AST node as written, `expanded` the same type with expanded values.
    `config` is the image config (Docker capitalisation: Env, Cmd, WorkingDir, ...) after the step.
    `env` is the process env a RUN sees (config env + stage ARGs + proxy build args); `argv` its argv.
    `args_used` are the ARG values the step depends on (part of its cache key).
    """

    index: int  # 1-based position in the stage (the FROM is 0)
    keyword: str
    line: int
    end_line: int
    instruction: ast.Instruction
    expanded: ast.Instruction
    name: str  # progress text: "[build 2/5] RUN make"
    config: Mapping[str, Any]
    created_by: str
    empty_layer: bool
    args_used: Mapping[str, str] = field(default_factory=dict)
    env: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    workdir: str = "/"
    user: str = ""
    source: Source | None = None  # COPY/ADD source
    dest: str = ""  # COPY/ADD/WORKDIR absolute destination (a trailing / kept)
    inline_files: tuple[tuple[str, str], ...] = ()  # COPY <<EOF (name, data) / RUN heredoc (path, data)
    mount_sources: tuple[tuple[ast.Mount, Source | None], ...] = ()
    onbuild_trigger: bool = False
    author: str = ""  # the image's top-level Author (MAINTAINER)

    @property
    def is_layer(self) -> bool:
        return not self.empty_layer


@dataclass(frozen=True)
class StagePlan:
    index: int
    name: str | None
    display_name: str  # name or stage-N
    line: int
    base: Base
    platform: str  # the stage's platform (os/arch[/variant])
    base_config: Mapping[str, Any]  # config section the stage starts from
    steps: tuple[Step, ...]
    deps: frozenset[int]  # stage indexes this one needs (base, --from, mount from)
    # progress text of the FROM ("[build 1/5] FROM docker.io/library/alpine:3.18"); "" for scratch
    from_name: str = ""

    @property
    def config(self) -> Mapping[str, Any]:
        return self.steps[-1].config if self.steps else self.base_config


@dataclass(frozen=True)
class BuildPlan:
    dockerfile: ast.Dockerfile
    target: int
    stages: tuple[StagePlan, ...]  # needed stages, dependencies first
    global_args: Mapping[str, str]
    build_args: Mapping[str, str]
    unused_build_args: tuple[str, ...]
    warnings: tuple[str, ...]
    platform: str
    # the context paths the needed stages read (COPY/ADD sources, RUN bind mounts), "/"-rooted and
    # sorted as BuildKit's ctxPaths; () when the whole context is needed ("/" among them)
    context_paths: tuple[str, ...] = ()

    def stage(self, index: int) -> StagePlan:
        for s in self.stages:
            if s.index == index:
                return s
        raise KeyError(index)

    @property
    def target_stage(self) -> StagePlan:
        return self.stage(self.target)

    def levels(self) -> list[list[StagePlan]]:
        """Stages grouped so that each group depends only on earlier groups (run a group in parallel)."""
        done: set[int] = set()
        left = list(self.stages)
        out: list[list[StagePlan]] = []
        while left:
            ready = [s for s in left if s.deps <= done]
            out.append(ready)
            done |= {s.index for s in ready}
            left = [s for s in left if s.index not in done]
        return out


# --- helpers --------------------------------------------------------------------------------------


def _go_list(items: Iterable[str]) -> str:
    """Go's %v of a []string."""
    return "[" + " ".join(items) + "]"


def _go_qlist(items: Iterable[str]) -> str:
    """Go's %q of a []string."""
    return "[" + " ".join(_go_quote(i) for i in items) + "]"


def _go_qrune(n: int) -> str:
    """Go's %q of an int: a quoted character literal."""
    if n == 39:
        return "'\\''"
    if n == 92:
        return "'\\\\'"
    specials = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if n in specials:
        return f"'{specials[n]}'"
    if 0 <= n < 0x20 or n == 0x7F:
        return f"'\\x{n:02x}'"
    if 0 <= n <= 0x10FFFF:
        ch = chr(n)
        if ch.isprintable():
            return f"'{ch}'"
        return f"'\\u{n:04x}'" if n <= 0xFFFF else f"'\\U{n:08x}'"
    return "'\\ufffd'"


def _env_list_set(env: list[str], key: str, value: str) -> list[str]:
    # BuildKit's addEnv replaces in place to keep the order
    prefix = key + "="
    for i, e in enumerate(env):
        if e.startswith(prefix) or e == key:
            new = list(env)
            new[i] = f"{key}={value}"
            return new
    return [*env, f"{key}={value}"]


def _env_set(env: dict[str, str], key: str, value: str) -> None:
    """LLB's EnvList.AddOrReplace: a replaced variable moves to the end."""
    env.pop(key, None)
    env[key] = value


def _env_map(env: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def normalize_workdir(current: str, wd: str) -> str:
    """system.NormalizeWorkdir for Linux: relative paths join the current one; cleaned."""
    if not wd:
        raise ValueError("cannot normalize nothing")
    if not posixpath.isabs(wd):
        wd = posixpath.join("/", current or "/", wd)
    wd = posixpath.normpath(wd)
    return "/" if wd == "//" else wd


def _dest_path(workdir: str, dest: str) -> str:
    """COPY/ADD destination made absolute against WORKDIR, a trailing slash kept (it means 'into')."""
    trailing = dest.endswith("/") or dest.endswith("/.") or dest == "."
    if not posixpath.isabs(dest):
        dest = posixpath.join("/", workdir or "/", dest)
    out = posixpath.normpath(dest)
    if out == "//":
        out = "/"
    if trailing and not out.endswith("/"):
        out += "/"
    return out


_DIGEST_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


def _digest_problem(value: str) -> str | None:
    """go-digest's Parse errors for an ADD --checksum value, or None when it is a valid digest."""
    alg, sep, enc = value.partition(":")
    if not sep or not alg or not enc or not re.fullmatch(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*", alg) \
            or not re.fullmatch(r"[a-zA-Z0-9=_-]+", enc):
        return "invalid checksum digest format"
    if alg not in _DIGEST_LEN:
        return "unsupported digest algorithm"
    if len(enc) != _DIGEST_LEN[alg]:
        return "invalid checksum digest length"
    if not re.fullmatch(r"[a-f0-9]+", enc):
        return "invalid checksum digest format"
    return None


def _is_remote(src: str) -> bool:
    return src.startswith(("http://", "https://", "git@")) or src.endswith(".git") or "://" in src


def valid_signal(raw: str) -> bool:
    """moby's signal.ParseSignal on Linux: a number > 0, or a name with or without SIG (RTMIN+n too)."""
    import signal as _signal

    if raw.isdigit():
        return int(raw) > 0
    name = raw.upper()
    name = name[3:] if name.startswith("SIG") else name
    if re.fullmatch(r"RTMIN(\+([1-9]|1[0-5]))?|RTMAX(-([1-9]|1[0-4]))?", name):
        return True
    names = {n[3:] for n in dir(_signal) if n.startswith("SIG") and not n.startswith("SIG_")}
    return name in names


_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_ports(specs: Iterable[str]) -> list[str]:
    """nat.ParsePortSpecs for EXPOSE: `80`, `80/udp`, `8000-8002/tcp` -> ["80/tcp", ...]."""
    out: list[str] = []
    for raw in specs:
        parts = raw.split("/")
        if not raw or not parts[0]:
            raise ValueError(f"invalid containerPort: {raw}")
        port = parts[0]
        proto = "tcp" if len(parts) == 1 or not parts[1] else parts[1]
        if ":" in port:  # ip:public:private forms are not for EXPOSE
            port = port.rsplit(":", 1)[-1]
        if proto.lower() not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid proto: {proto}")
        m = _PORT_RE.match(port)
        if not m:
            raise ValueError(f"invalid containerPort: {port}")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else start
        if start > 65535 or end > 65535 or end < start:
            raise ValueError(f"invalid containerPort: {port}")
        for p in range(start, end + 1):
            spec = f"{p}/{proto.lower()}"
            if spec not in out:
                out.append(spec)
    return out


def _stage_display(index: int, name: str | None) -> str:
    return name if name else f"stage-{index}"


def _stage_file(path: str) -> str:
    return posixpath.basename(path) or "Dockerfile"


def _bk_platform(p: _platform.Platform) -> _platform.Platform:
    """containerd 1.x's Normalize as BuildKit shows it: arm64's default v8 variant is left out."""
    if p.architecture == "arm64" and p.variant in ("v8", "8"):
        return replace(p, variant="")
    return p


_VERTEX_KEYWORDS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})
_SPECIAL_VARS = frozenset("@*#?-$!0")


# --- the planner ----------------------------------------------------------------------------------


@dataclass
class _State:
    """A stage's mutable state while dispatching (BuildKit's dispatchState)."""

    config: dict[str, Any]
    state_env: dict[str, str]  # LLB env: config env + ARG values (what expansion and RUN see)
    build_args: list[tuple[str, str | None]] = field(default_factory=list)  # ARGs declared here
    cmd_set: bool = False
    author: str = ""
    snapshot: dict[str, Any] | None = None  # the config as of the last step (shared while unchanged)


def _copy_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        out[k] = list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v
    return out


class _Planner:
    def __init__(self, df: ast.Dockerfile, target: str | None, build_args: Mapping[str, str],
                 platform: str | None, build_platform: str | None, build_contexts: Iterable[str],
                 resolve_config: ConfigResolver | None) -> None:
        self.df = df
        self.path = df.path
        self.lex = ShellLex(df.escape)
        # heredoc bodies: quotes kept, and always `\` as the escape (BuildKit's ExpandRaw)
        self.heredoc_lex = ShellLex("\\", skip_process_quotes=True)
        self.build_args = dict(build_args)
        self.contexts = set(build_contexts)
        self.resolve_config = resolve_config
        self.warnings: list[str] = list(df.warnings)
        self.consumed: set[str] = set()
        try:
            self.target_platform = _bk_platform(_platform.parse(platform) if platform else _platform.default())
            self.build_platform = _bk_platform(
                _platform.parse(build_platform) if build_platform else _platform.default())
        except OCIError as e:
            raise DockerfileError(self.path, 0, f"failed to parse platform: {e}") from None
        self.target_name = target
        self.stage_names: dict[str, list[int]] = {}
        for st in df.stages:
            if st.name:
                self.stage_names.setdefault(st.name.lower(), []).append(st.index)
        self.global_args = self._global_args()
        self._final_state_env: dict[int, dict[str, str]] = {}
        self._hinted: set[tuple[str, str, int]] = set()

    def err(self, line: int, message: str) -> DockerfileError:
        return DockerfileError(self.path, line, message)

    # global scope -------------------------------------------------------------------------------
    def _global_args(self) -> dict[str, str]:
        bp, tp = self.build_platform, self.target_platform
        target = ""
        if self.target_name:
            target = self.target_name
        elif self.df.stages:
            last = self.df.stages[-1]
            target = last.name or ""
        defaults = {
            "BUILDPLATFORM": _platform.format(bp), "BUILDOS": bp.os, "BUILDOSVERSION": bp.os_version,
            "BUILDARCH": bp.architecture, "BUILDVARIANT": bp.variant,
            "TARGETPLATFORM": _platform.format_all(tp), "TARGETOS": tp.os, "TARGETOSVERSION": tp.os_version,
            "TARGETARCH": tp.architecture, "TARGETVARIANT": tp.variant, "TARGETSTAGE": target,
        }
        env = {k: self.build_args.get(k, v) for k, v in defaults.items()}
        for arg in self.df.global_args:
            if arg.name in self.build_args:
                env[arg.name] = self.build_args[arg.name]
                self.consumed.add(arg.name)
            elif arg.default is not None:
                env[arg.name] = self._expand(arg.line, arg.default, env)
                self.consumed.add(arg.name)
            else:
                self.consumed.add(arg.name)
        return env

    def _expand(self, line: int, word: str, env: Mapping[str, str], lex: ShellLex | None = None) -> str:
        try:
            return (lex or self.lex).process_word(word, env)
        except ExpandError as e:
            raise self.err(line, str(e)) from None

    def _expand_matches(self, line: int, word: str, env: Mapping[str, str],
                        declared: set[str] | None = None) -> tuple[str, set[str]]:
        """Expand; with `declared` (the stage's ARG names), report undefined variables as BuildKit's lint."""
        try:
            r = self.lex.process(word, env)
        except ExpandError as e:
            raise self.err(line, str(e)) from None
        if declared is not None:
            for name in sorted(r.undefined - declared):
                self._undefined_var(name, line, env)
        return r.result, r.matched

    def _undefined_var(self, name: str, line: int, env: Mapping[str, str]) -> None:
        """BuildKit's UndefinedVar check (a warning): a plain $NAME that is neither set nor an ARG."""
        if name in _SPECIAL_VARS or name.isdigit():
            return
        key = ("undefined", name, line)
        if key in self._hinted:
            return
        self._hinted.add(key)
        hint = suggest(name, [*self.global_args, *env])
        msg = f"UndefinedVar: Usage of undefined variable '${name}'"
        if hint:
            msg += f" (did you mean ${hint}?)"
        self.warnings.append(f"{msg} (line {line})")

    # stage resolution ---------------------------------------------------------------------------
    def find_stage(self, name: str, before: int | None = None) -> int | None:
        """A stage by name (case-insensitive). With `before`, the latest definition before that stage
        (what a FROM sees); else the last definition (what --from and --target see), as BuildKit."""
        idxs = [i for i in self.stage_names.get(name.lower(), []) if before is None or i < before]
        return idxs[-1] if idxs else None

    def _hint_image(self, ref: str, line: int) -> None:
        """A bare name that is not a stage is an image (as in BuildKit); warn when it looks like a typo."""
        hint = suggest(ref, list(self.stage_names), case_sensitive=False)
        if hint:
            self.warnings.append(f"{_stage_file(self.path)}:{line}: {_go_quote(ref)} is not a build stage: "
                                 f"using the image {_go_quote(ref)} (did you mean {hint}?)")

    def resolve_source(self, ref: str, line: int, current: int, mount_target: str | None = None,
                       strict: bool = True) -> Source:
        """A --from value: stage index, stage name, named context, or image reference. The stage must
        be defined before the current one (BuildKit dispatches stages in order)."""
        st: int | None
        if re.fullmatch(r"-?\d+", ref):
            st = int(ref)
            if st < 0 or st >= len(self.df.stages):
                raise self.err(line, f"invalid stage index {st}")
        else:
            st = self.find_stage(ref)
        if st is not None:
            if st == current:
                name = _stage_display(st, self.df.stages[st].name)
                raise self.err(line, f"circular dependency detected on stage: {name}")
            if st > current and strict:
                if mount_target is not None:
                    raise self.err(line, f"cannot mount from stage {_go_quote(ref)} to {_go_quote(mount_target)}, "
                                         "stage needs to be defined before current command")
                here = _stage_display(current, self.df.stages[current].name)
                raise self.err(line, f"cannot copy from stage {_go_quote(ref)}, it needs to be defined before "
                                     f"current stage {_go_quote(here)}")
            return Source("stage", stage=st)
        if ref in self.contexts:
            return Source("named", ref=ref)
        try:
            _reference.parse(ref)
        except OCIError as e:
            raise self.err(line, f"failed to parse stage name {_go_quote(ref)}: {e}") from None
        if ("image", ref, line) not in self._hinted:
            self._hinted.add(("image", ref, line))
            self._hint_image(ref, line)
        return Source("image", ref=ref)

    def expand_from(self, ref: str, line: int) -> str:
        """COPY --from is expanded with the global ARGs only (it names a stage before the stage runs)."""
        if "$" not in ref:
            return ref
        out, matched = self._expand_matches(line, ref, self.global_args)
        self.consumed |= matched
        return out

    def stage_base(self, st: ast.Stage) -> Base:
        line = st.line
        base, matched = self._expand_matches(line, st.base, self.global_args)
        self.consumed |= matched
        if not base:
            raise self.err(line, f"base name ({st.base}) should not be blank")
        plat = None
        if st.platform:
            plat, m2 = self._expand_matches(line, st.platform, self.global_args)
            self.consumed |= m2
            if not plat:
                raise self.err(line, f"empty platform value from expression {st.platform}")
            try:
                plat = _platform.format(_bk_platform(_platform.parse(plat)))
            except OCIError as e:
                raise self.err(line, f"failed to parse platform {st.platform}: {e}") from None
        if base == "scratch":
            return Base("scratch", platform=plat)
        # FROM matches a stage name exactly (names are stored lower-case): `FROM Build` is an image
        idx = self.find_stage(base, before=st.index) if base == base.lower() else None
        if idx is not None:
            return Base("stage", stage=idx, platform=plat)
        if base in self.contexts:
            return Base("context", ref=base, platform=plat)
        try:
            _reference.parse(base)
        except OCIError as e:
            raise self.err(line, f"failed to parse stage name {_go_quote(base)}: {e}") from None
        self._hint_image(base, line)
        return Base("image", ref=base, platform=plat)

    def target_index(self) -> int:
        if not self.target_name:
            return len(self.df.stages) - 1
        idx = self.find_stage(self.target_name)
        if idx is None:
            raise DockerfileError(self.path, 0, f"target stage {_go_quote(self.target_name)} could not be found")
        return idx

    # planning -----------------------------------------------------------------------------------
    def plan(self) -> BuildPlan:
        target = self.target_index()
        bases = {st.index: self.stage_base(st) for st in self.df.stages}
        # dependencies as written (for pruning and ordering), before any config is resolved
        deps: dict[int, set[int]] = {}
        for st in self.df.stages:
            d: set[int] = set()
            if st.name and st.name.lower() in self.contexts:
                deps[st.index] = d  # replaced by a named context
                continue
            if bases[st.index].kind == "stage":
                d.add(bases[st.index].stage)  # type: ignore[arg-type]
            for ins in st.instructions:
                for ref, line, mount_target in self._from_refs(ins):
                    src = self._peek_source(ref, line, st.index, mount_target)
                    if src is not None:
                        d.add(src)
            deps[st.index] = d
        needed: list[int] = []
        visiting: set[int] = set()

        def visit(i: int) -> None:
            if i in needed:
                return
            if i in visiting:
                name = _stage_display(i, self.df.stages[i].name)
                raise self.err(self.df.stages[i].line, f"circular dependency detected on stage: {name}")
            visiting.add(i)
            for dep in sorted(deps[i]):
                visit(dep)
            visiting.discard(i)
            needed.append(i)

        visit(target)
        multi = len(self.df.stages) > 1
        planned: dict[int, StagePlan] = {}
        for i in needed:
            planned[i] = self._plan_stage(self.df.stages[i], bases[i], planned, multi)
        unused = sorted(k for k in self.build_args if k not in self.consumed and k not in PROXY_ARGS
                        and k not in PLATFORM_ARGS)
        if unused:
            self.warnings.append(f"[Warning] One or more build-args {_go_list(unused)} were not consumed")
        ctx_paths: set[str] = set()
        for sp in planned.values():
            for step in sp.steps:
                if step.keyword in ("COPY", "ADD") and step.source == Source("context"):
                    for src in step.expanded.srcs:  # type: ignore[attr-defined]
                        if not _is_remote(src):
                            ctx_paths.add(posixpath.normpath(posixpath.join("/", src)))
                for m, msrc in step.mount_sources:
                    if msrc is None and m.type == "bind":
                        ctx_paths.add(posixpath.normpath(posixpath.join("/", m.source or "/")))
        ctx = () if "/" in ctx_paths else tuple(sorted(ctx_paths))
        return BuildPlan(
            dockerfile=self.df, target=target, stages=tuple(planned[i] for i in needed), context_paths=ctx,
            global_args=dict(self.global_args), build_args=dict(self.build_args),
            unused_build_args=tuple(unused), warnings=tuple(self.warnings),
            platform=_platform.format(self.target_platform),
        )

    def _from_refs(self, ins: ast.Instruction) -> list[tuple[str, int, str | None]]:
        out: list[tuple[str, int, str | None]] = []
        if isinstance(ins, ast.Copy) and ins.from_:
            out.append((ins.from_, ins.line, None))
        if isinstance(ins, ast.Run):
            for m in ins.mounts:
                if m.from_:
                    out.append((m.from_, ins.line, m.target))
        return out

    def _peek_source(self, ref: str, line: int, current: int, mount_target: str | None) -> int | None:
        """The stage a --from names (expanded with the global ARGs)."""
        src = self.resolve_source(self.expand_from(ref, line), line, current, mount_target, strict=False)
        return src.stage if src.kind == "stage" else None

    def _initial_state(self, st: ast.Stage, base: Base, planned: Mapping[int, StagePlan]) -> _State:
        if base.kind == "stage":
            parent = planned[base.stage]  # type: ignore[index]
            cfg = _copy_config(parent.config)
            env = dict(self._final_state_env[base.stage])  # type: ignore[index]
            return _State(cfg, env)
        cfg: dict[str, Any] = {}
        if base.kind == "scratch":
            cfg = {"Env": [f"PATH={DEFAULT_PATH}"]}  # BuildKit's emptyImage
        elif self.resolve_config is not None:
            doc = self.resolve_config(base)
            if doc:
                cfg = _copy_config(doc.get("config") or {})
        # BuildKit makes sure PATH is always set in the config
        env = list(cfg.get("Env") or [])
        if "PATH" not in _env_map(env):
            env.append(f"PATH={DEFAULT_PATH}")
        cfg["Env"] = env
        return _State(cfg, _env_map(env))

    def _plan_stage(self, st: ast.Stage, base: Base, planned: Mapping[int, StagePlan], multi: bool) -> StagePlan:
        display = _stage_display(st.index, st.name)
        if st.name and st.name.lower() in self.contexts:
            # a --build-context named like a stage replaces the whole stage
            ctx_base = Base("context", ref=st.name.lower(), platform=base.platform)
            state = self._initial_state(st, ctx_base, planned)
            self._final_state_env[st.index] = state.state_env
            return StagePlan(st.index, st.name, display, st.line, ctx_base,
                             base.platform or _platform.format(self.target_platform),
                             state.config, (), frozenset(), f"[{display}] FROM {st.name}")
        state = self._initial_state(st, base, planned)
        base_config = _copy_config(state.config)
        instructions: list[tuple[ast.Instruction, bool]] = []
        for trig in state.config.get("OnBuild") or []:
            instructions.append((parse_instruction_line(trig, self.df.escape, st.line, self.path), True))
        state.config.pop("OnBuild", None)  # triggers run once, in the child only
        instructions += [(i, False) for i in st.instructions]
        prefix = f"{display} " if multi else ""
        # BuildKit counts the FROM unless it is scratch (which shows no vertex)
        first = 0 if base.kind == "scratch" else 1
        total = first + sum(1 for i, _ in instructions if i.keyword in _VERTEX_KEYWORDS)
        width = len(str(total))
        vertex = first
        steps: list[Step] = []
        deps: set[int] = set()
        if base.kind == "stage":
            deps.add(base.stage)  # type: ignore[arg-type]
        for pos, (ins, trigger) in enumerate(instructions, 1):
            label = ""
            if ins.keyword in _VERTEX_KEYWORDS:
                vertex += 1
                label = f"[{prefix}{vertex:>{width}}/{total}] "
            step = self._dispatch(st, state, ins, pos, label, trigger)
            steps.append(step)
            if step.source is not None and step.source.kind == "stage":
                deps.add(step.source.stage)  # type: ignore[arg-type]
            for _m, src in step.mount_sources:
                if src is not None and src.kind == "stage":
                    deps.add(src.stage)  # type: ignore[arg-type]
        self._final_state_env[st.index] = dict(state.state_env)
        if base.kind == "stage":
            from_text = _stage_display(base.stage or 0, self.df.stages[base.stage or 0].name)
        else:
            from_text = base.ref or base.kind
        if base.kind == "image":
            try:
                from_text = str(_reference.parse(base.ref))
            except OCIError:
                from_text = base.ref
        return StagePlan(
            index=st.index, name=st.name, display_name=display, line=st.line, base=base,
            platform=self._stage_platform(base, planned), base_config=base_config,
            steps=tuple(steps), deps=frozenset(deps),
            from_name=f"[{prefix}{1:>{width}}/{total}] FROM {from_text}" if first else "",
        )

    def _stage_platform(self, base: Base, planned: Mapping[int, StagePlan]) -> str:
        if base.platform:
            return base.platform
        if base.kind == "stage" and base.stage in planned:
            return planned[base.stage].platform  # type: ignore[index]
        return _platform.format(self.target_platform)

    # dispatch -----------------------------------------------------------------------------------
    def _dispatch(self, st: ast.Stage, state: _State, ins: ast.Instruction, pos: int, label: str,
                  trigger: bool) -> Step:
        line = ins.line
        cfg = state.config
        env = state.state_env
        kw = ins.keyword
        extra: dict[str, Any] = {}
        used: set[str] = set()
        arg_names = {k for k, _ in state.build_args}
        text = self._display_text(ins, env) if kw in _VERTEX_KEYWORDS else ins.original

        def ex(word: str) -> str:
            r, m = self._expand_matches(line, word, env, arg_names)
            used.update(m & arg_names)
            return r

        expanded: ast.Instruction = ins
        empty = True
        created_by = ""
        if isinstance(ins, ast.ArgInstruction):
            parts, decls = [], []
            for a in ins.args_:
                value = a.default
                if a.name in self.build_args:
                    value = self.build_args[a.name]
                elif value is None and a.name in self.global_args:
                    value = self.global_args[a.name]
                elif value is not None:
                    value = self._expand(line, value, env)
                self.consumed.add(a.name)
                if value is not None:
                    _env_set(env, a.name, value)
                state.build_args.append((a.name, value))
                parts.append(a.name if value is None else f"{a.name}={value}")
                decls.append(ast.Arg(a.name, value, a.line))
                if value is not None:
                    used.add(a.name)
            expanded = replace(ins, args_=tuple(decls))
            created_by = "ARG " + " ".join(parts)
        elif isinstance(ins, ast.Env):
            pairs = []
            for kv in ins.pairs:
                k, v = ex(kv.key), ex(kv.value)
                pairs.append(ast.KeyValue(k, v, kv.no_delim))
                _env_set(env, k, v)
                cfg["Env"] = _env_list_set(list(cfg.get("Env") or []), k, v)
            expanded = replace(ins, pairs=tuple(pairs))
            created_by = "ENV" + "".join(f" {p}" for p in pairs)
        elif isinstance(ins, ast.Label):
            pairs = []
            labels = dict(cfg.get("Labels") or {})
            for kv in ins.pairs:
                k, v = ex(kv.key), ex(kv.value)
                pairs.append(ast.KeyValue(k, v, kv.no_delim))
                labels[k] = v
            cfg["Labels"] = labels
            expanded = replace(ins, pairs=tuple(pairs))
            created_by = "LABEL" + "".join(f" {p}" for p in pairs)
        elif isinstance(ins, ast.Workdir):
            wd = ex(ins.path)
            try:
                wd = normalize_workdir(cfg.get("WorkingDir") or "/", wd)
            except ValueError as e:
                raise self.err(line, str(e)) from None
            cfg["WorkingDir"] = wd
            expanded = replace(ins, path=wd)
            created_by = f"WORKDIR {wd}"
            empty = wd == "/"  # BuildKit mkdirs the directory: a (possibly empty) layer
            extra["dest"] = wd
        elif isinstance(ins, ast.User):
            user = ex(ins.user)
            cfg["User"] = user
            expanded = replace(ins, user=user)
            created_by = f"USER {user}"
        elif isinstance(ins, ast.StopSignal):
            sig = ex(ins.signal)
            if not valid_signal(sig):
                raise self.err(line, f"Invalid signal: {sig}")
            cfg["StopSignal"] = sig
            expanded = replace(ins, signal=sig)
            created_by = f"STOPSIGNAL {sig}"
        elif isinstance(ins, ast.Volume):
            vols = []
            for v in ins.paths:
                vols.append(ex(v))
                if not vols[-1]:
                    raise self.err(line, "VOLUME specified can not be an empty string")
            volumes = dict(cfg.get("Volumes") or {})
            for v in vols:
                volumes[v] = {}
            cfg["Volumes"] = volumes
            expanded = replace(ins, paths=tuple(vols))
            created_by = f"VOLUME {_go_list(vols)}"
        elif isinstance(ins, ast.Expose):
            words: list[str] = []
            for p in ins.ports:
                try:
                    r = self.lex.process(p, env)
                except ExpandError as e:
                    raise self.err(line, str(e)) from None
                used.update(r.matched & arg_names)
                words += r.words
            try:
                ports = parse_ports(words)
            except ValueError as e:
                raise self.err(line, str(e)) from None
            exposed = dict(cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            cfg["ExposedPorts"] = exposed
            expanded = replace(ins, ports=tuple(ports))
            created_by = "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(ports)) + "]"
        elif isinstance(ins, ast.Maintainer):
            extra["author"] = state.author = ins.maintainer
            created_by = f"MAINTAINER {ins.maintainer}"
        elif isinstance(ins, ast.Shell):
            cfg["Shell"] = list(ins.shell)
            created_by = f"SHELL {_go_list(ins.shell)}"
        elif isinstance(ins, (ast.Cmd, ast.Entrypoint)):
            args = list(ins.cmd)
            if ins.prepend_shell:
                args = self._with_shell(cfg, args)
            if isinstance(ins, ast.Cmd):
                cfg["Cmd"] = args
                state.cmd_set = True
                created_by = f"CMD {_go_qlist(args)}"
            else:
                cfg["Entrypoint"] = args
                if not state.cmd_set:
                    cfg["Cmd"] = None
                created_by = f"ENTRYPOINT {_go_qlist(args)}"
            if isinstance(ins, ast.Cmd):
                cfg["ArgsEscaped"] = True  # BuildKit sets it on every CMD
            expanded = replace(ins, cmd=tuple(args))
        elif isinstance(ins, ast.Healthcheck):
            hc = self._healthcheck(ins)
            cfg["Healthcheck"] = hc
            created_by = "HEALTHCHECK &{" + " ".join([
                _go_qlist(hc["Test"]),
                *(_go_quote(format_go_duration(hc.get(k, 0)))
                  for k in ("Interval", "Timeout", "StartPeriod", "StartInterval")),
                _go_qrune(hc.get("Retries", 0)),
            ]) + "}"
        elif isinstance(ins, ast.Onbuild):
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [ins.expression]
            created_by = ""  # BuildKit writes no history entry for ONBUILD
        elif isinstance(ins, ast.Run):
            expanded, created_by, run_extra = self._run(st, state, ins, used)
            extra.update(run_extra)
            empty = False
        elif isinstance(ins, ast.Copy):  # COPY and ADD
            expanded, created_by, copy_extra = self._copy(st, state, ins, ex)
            extra.update(copy_extra)
            empty = False
        else:  # pragma: no cover - every keyword is handled above
            raise self.err(line, f"unknown instruction: {kw}")

        if kw == "RUN":
            args_used = {k: (env.get(k, v or "")) for k, v in state.build_args}
        else:
            args_used = {k: env.get(k, "") for k in sorted(used) if k in env}
        if kw in ("RUN", "COPY", "ADD"):
            created_by += " # buildkit"
        if kw in ("RUN", "COPY", "ADD") and state.snapshot is not None:
            config_after = state.snapshot  # these never touch the config: share the snapshot
        else:
            config_after = state.snapshot = _copy_config(cfg)
        return Step(
            index=pos, keyword=kw, line=line, end_line=ins.end_line, instruction=ins, expanded=expanded,
            name=label + text, config=config_after, created_by=created_by,
            empty_layer=empty, args_used=args_used,
            env=tuple(extra.get("env", ())), argv=tuple(extra.get("argv", ())),
            workdir=cfg.get("WorkingDir") or "/", user=cfg.get("User") or "",
            source=extra.get("source"), dest=extra.get("dest", ""),
            inline_files=tuple(extra.get("inline_files", ())),
            mount_sources=tuple(extra.get("mount_sources", ())), onbuild_trigger=trigger,
            author=extra.get("author", state.author),
        )

    def _display_text(self, ins: ast.Instruction, env: Mapping[str, str]) -> str:
        """The progress text: the line with variables expanded and the keyword upper-cased, as BuildKit."""
        lex = self.lex
        if ins.keyword == "RUN":
            lex = ShellLex(self.df.escape, raw_quotes=True, skip_unset_env=True)
        try:
            text = lex.process_word(ins.original, env)
        except ExpandError:
            text = ins.original
        head, sep, tail = text.partition(" ")
        return head.upper() + sep + tail

    def _with_shell(self, cfg: Mapping[str, Any], args: list[str]) -> list[str]:
        shell = list(cfg.get("Shell") or DEFAULT_SHELL)
        return shell + [" ".join(args)]

    def _healthcheck(self, ins: ast.Healthcheck) -> dict[str, Any]:
        if ins.kind == "NONE":
            return {"Test": ["NONE"]}
        test = ["CMD" if not ins.prepend_shell else "CMD-SHELL", *ins.cmd]
        hc: dict[str, Any] = {"Test": test}
        for key, raw in (("Interval", ins.interval), ("Timeout", ins.timeout), ("StartPeriod", ins.start_period),
                         ("StartInterval", ins.start_interval)):
            if raw:
                ns = parse_go_duration(raw)
                if ns:
                    hc[key] = ns
        if ins.retries:
            hc["Retries"] = ins.retries
        return hc

    def _run(self, st: ast.Stage, state: _State, ins: ast.Run,
             used: set[str]) -> tuple[ast.Instruction, str, dict[str, Any]]:
        line = ins.line
        env = state.state_env
        extra: dict[str, Any] = {}
        mounts = []
        mount_sources = []
        for raw in ins.flags.get("mount", []):
            try:
                m = parse_mount(raw, lambda w: self._expand(line, w, env))
            except _ParseError as e:
                raise self.err(line, str(e)) from None
            if m.target and not m.target.startswith("/"):
                # a relative target is under the working directory (BuildKit's dispatchRunMounts)
                m = replace(m, target=posixpath.join("/", state.config.get("WorkingDir") or "/", m.target))
            src = self.resolve_source(m.from_, line, st.index, m.target) if m.from_ else None
            mounts.append(m)
            mount_sources.append((m, src))
        args = list(ins.cmd)
        inline: list[tuple[str, str]] = []
        if ins.heredocs:
            if len(args) != 1 or not ins.prepend_shell:
                raise self.err(line, "parsing produces more than one file")
            doc = parse_heredoc(args[0])
            first = ins.heredocs[0]
            data = chomp_heredoc(first.content) if first.chomp else first.content
            if doc is not None:
                if first.content.startswith("#!"):
                    path = posixpath.join("/dev/pipes/", first.name)
                    inline.append((path, data))
                    args = [path]
                else:
                    args = [data]
            else:
                full = args[0]
                for h in ins.heredocs:
                    full += "\n" + h.content + h.name
                args = [full]
        if ins.prepend_shell:
            args = self._with_shell(state.config, args)
        # the process env: state env (config env + ARGs), PATH by default, proxy build args
        run_env = dict(env)
        run_env.setdefault("PATH", DEFAULT_PATH)
        for k in sorted(PROXY_ARGS):
            if k in self.build_args:
                run_env[k] = self.build_args[k]
        # history: |N K=V ... as runCommandString
        build_env: list[str] = []
        index: dict[str, int] = {}
        for k, v in state.build_args:
            val = env.get(k, v or "")
            if k in index:
                build_env[index[k]] = f"{k}={val}"
            else:
                index[k] = len(build_env)
                build_env.append(f"{k}={val}")
        if build_env:
            build_env.insert(0, f"|{len(build_env)}")
        created_by = "RUN " + " ".join(build_env + args)
        extra.update(env=tuple(f"{k}={v}" for k, v in run_env.items()), argv=tuple(args),
                     inline_files=tuple(inline), mount_sources=tuple(mount_sources))
        return replace(ins, cmd=tuple(args), mounts=tuple(mounts)), created_by, extra

    def _copy(self, st: ast.Stage, state: _State, ins: ast.Copy,
              ex: Callable[[str], str]) -> tuple[ast.Instruction, str, dict[str, Any]]:
        line = ins.line
        kw = ins.keyword
        srcs = tuple(ex(s) for s in ins.srcs)
        dest = ex(ins.dest)
        chown = ex(ins.chown) if ins.chown else ins.chown
        chmod = ex(ins.chmod) if ins.chmod else ins.chmod
        source = Source("context")
        from_ = ins.from_ if isinstance(ins, ast.Copy) and not isinstance(ins, ast.Add) else None
        if from_:
            from_ = self.expand_from(from_, line)
            source = self.resolve_source(from_, line, st.index)
        inline: list[tuple[str, str]] = []
        names = [h.name for h in ins.heredocs]
        for word in ins.args[:-1]:
            h = parse_heredoc(word) if not ins.json else None
            if h is None or h.name not in names:
                continue
            doc = ins.heredocs[names.index(h.name)]
            data = chomp_heredoc(doc.content) if doc.chomp else doc.content
            if doc.expand:
                data = self._expand(line, data, state.state_env, self.heredoc_lex)
            inline.append((doc.name, data))
        kwargs: dict[str, Any] = dict(srcs=srcs, dest=dest, chown=chown, chmod=chmod)
        if isinstance(ins, ast.Add):
            if ins.checksum:
                kwargs["checksum"] = ex(ins.checksum)
                problem = _digest_problem(kwargs["checksum"])
                if problem:
                    raise self.err(line, problem)
                if len(srcs) != 1:
                    raise self.err(line, "checksum can't be specified for multiple sources")
                if not _is_remote(srcs[0]):
                    raise self.err(line, "checksum can't be specified for non-HTTP(S) sources")
        else:
            kwargs["from_"] = from_
            for src in srcs:
                if src.startswith(("http://", "https://")):
                    raise self.err(line, "source can't be a URL for COPY")
        expanded = replace(ins, **kwargs)
        msg = kw
        if isinstance(ins, ast.Copy) and ins.parents:
            msg += " --parents"
        if chown:
            msg += f" --chown={chown}"
        if chmod:
            msg += f" --chmod={chmod}"
        msg += "".join(f" {s}" for s in srcs) + "".join(f" <<{n}" for n, _ in inline) + f" {dest}"
        extra = {"source": source, "dest": _dest_path(state.config.get("WorkingDir") or "/", dest),
                 "inline_files": tuple(inline)}
        return expanded, msg, extra


def plan(dockerfile: ast.Dockerfile, target: str | None = None, build_args: Mapping[str, str] | None = None,
         platform: str | None = None, *, build_platform: str | None = None,
         build_contexts: Iterable[str] = (), resolve_config: ConfigResolver | None = None) -> BuildPlan:
    """The build graph for `target` (default: the last stage).

    `build_contexts` are the names given with --build-context (they win over images, and replace a
    stage of the same name); `resolve_config(base)` returns a base image's (or context's) OCI config
    JSON so its Env/WorkingDir/User/Shell/OnBuild apply -- without it image bases start empty.
    Raises DockerfileError (with the line) for undefined stages, bad references, bad expansions.
    """
    return _Planner(dockerfile, target, build_args or {}, platform, build_platform, build_contexts,
                    resolve_config).plan()


def history_text(step: Step) -> str:
    """`created_by` for the step's history entry, as BuildKit writes it ("" for ONBUILD: none)."""
    return step.created_by


def history_entry(step: Step, created: str | None = None) -> dict[str, Any] | None:
    """The image-config history object for a step (None when BuildKit writes none, i.e. ONBUILD)."""
    if not step.created_by:
        return None
    out: dict[str, Any] = {}
    if created:
        out["created"] = created
    out["created_by"] = step.created_by
    out["comment"] = HISTORY_COMMENT
    if step.empty_layer:
        out["empty_layer"] = True
    return out
