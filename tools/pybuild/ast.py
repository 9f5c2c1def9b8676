"""The Dockerfile AST: frozen dataclasses that keep each instruction's source lines.

Values here are raw (unexpanded) as written in the Dockerfile; `frontend.plan` expands them per stage.
Every instruction is an `Instruction` (common fields) and, when parsed, one of its typed subclasses
(`Run`, `Copy`, ...), so consumers can `isinstance` on them or read the generic fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Heredoc:
    """One `<<EOF` document. `expand` is False for a quoted delimiter; `chomp` for `<<-` (tabs stripped)."""

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0  # `3<<EOF` redirects that descriptor (kept for RUN's reconstituted script)

    @property
    def text(self) -> str:
        """The content with leading tabs stripped when `chomp` (what gets written/run)."""
        if not self.chomp:
            return self.content
        import re

        return re.sub(r"(?m)^\t+", "", self.content)


@dataclass(frozen=True)
class KeyValue:
    """An ENV or LABEL pair (`no_delim` for the legacy `ENV key value` form)."""

    key: str
    value: str
    no_delim: bool = False

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class Arg:
    """One ARG declaration; `default` None when declared without `=`."""

    name: str
    default: str | None = None
    line: int = 0

    def __str__(self) -> str:
        return self.name if self.default is None else f"{self.name}={self.default}"


@dataclass(frozen=True)
class Mount:
    """A RUN --mount (BuildKit's instructions.Mount). `from_` is the `from=` key."""

    type: str = "bind"  # bind | cache | tmpfs | secret | ssh
    target: str = ""
    id: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = False
    sharing: str = "shared"  # shared | private | locked (cache only)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    size: int | None = None  # tmpfs size in bytes
    env: str = ""  # secret env=


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """An instruction as written. `args` are the words after the keyword and flags: the JSON list for a
    JSON form (`json` True), else the whitespace-split words, or for the shell-dependent instructions
    (RUN CMD ENTRYPOINT HEALTHCHECK-CMD) a single element holding the raw command text. `rest` is the
    raw text after the flags. `flags` maps the flag name (no dashes) to str, bool or list[str]."""

    line: int
    end_line: int
    keyword: str
    original: str
    args: tuple[str, ...] = ()
    json: bool = False
    rest: str = ""
    flags: Mapping[str, Any] = field(default_factory=dict)
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    image: str = ""
    name: str | None = None  # the `AS name`, as written (matching is case-insensitive)
    platform: str | None = None  # --platform, raw


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    cmd: tuple[str, ...] = ()  # shell form: one element, the command text
    prepend_shell: bool = True  # shell form (run through SHELL)
    mounts: tuple[Mount, ...] = ()
    network: str | None = None  # default | none | host
    security: str | None = None  # sandbox | insecure


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    srcs: tuple[str, ...] = ()  # file sources; heredoc sources (`<<EOF`) are in `heredocs`
    dest: str = ""
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Add(Copy):
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    pairs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ArgInstruction(Instruction):
    """`ARG a b=1`: one instruction may declare several."""

    args_: tuple[Arg, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    pairs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    ports: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    cmd: tuple[str, ...] = ()
    prepend_shell: bool = True


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    cmd: tuple[str, ...] = ()
    prepend_shell: bool = True


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    shell: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    user: str = ""


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    signal: str = ""


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """`HEALTHCHECK NONE` (kind NONE) or `HEALTHCHECK [opts] CMD ...` (kind CMD). Durations raw strings."""

    kind: str = "CMD"
    cmd: tuple[str, ...] = ()
    prepend_shell: bool = True
    interval: str | None = None
    timeout: str | None = None
    start_period: str | None = None
    start_interval: str | None = None
    retries: int | None = None


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    expression: str = ""  # the trigger text as stored in the image config's OnBuild
    inner: Instruction | None = None


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    maintainer: str = ""


@dataclass(frozen=True)
class Stage:
    """One FROM ... block. `base` and `platform` are raw (expanded by the frontend with global ARGs)."""

    index: int
    name: str | None
    base: str
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...]
    from_instruction: From | None = None


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile. `directives` holds `syntax`/`escape`/`check` from the top comments."""

    path: str
    directives: Mapping[str, str]
    global_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    escape: str = "\\"
    warnings: tuple[str, ...] = ()  # parser warnings (empty continuation lines)
