"""`--security-opt` as docker 20.10 reads it: the CLI's pass (a seccomp profile file is read and sent
inline as compacted JSON) and the daemon's (seccomp / no-new-privileges / label / apparmor).

    sent = cli_security_opts(["seccomp=prof.json", "no-new-privileges"])   # → HostConfig.SecurityOpt
    sec = parse_security_opts(sent)             # .seccomp ("" default, "unconfined", "builtin" or JSON)
"""

from __future__ import annotations

from . import errdefs
from .records import record

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@record
class SecurityOptions:
    seccomp: str = ""                 # "": the default profile; "unconfined"; "builtin"; else a profile's JSON
    no_new_privileges: bool = False
    apparmor: str = ""
    labels: tuple[str, ...] = ()


def compact_json(text: str) -> str:
    """Go's json.Compact: whitespace outside strings dropped, everything else byte for byte."""
    out = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch not in " \t\r\n":
            out.append(ch)
    return "".join(out)


def cli_security_opts(opts: list[str]) -> list[str]:
    """docker CLI's parseSecurityOpts: errors are the CLI's own (before the daemon is asked)."""
    out = []
    for opt in opts:
        con = opt.split("=", 1)
        if len(con) == 1 and con[0] != "no-new-privileges":
            if ":" not in opt:
                raise ValueError(f'Invalid --security-opt: "{opt}"')
            con = opt.split(":", 1)
        if con[0] == "seccomp" and con[1] not in ("unconfined", "builtin"):
            try:
                with open(con[1], encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise ValueError(f"opening seccomp profile ({con[1]}) failed: open {con[1]}: {reason}") from None
            import json  # only for a profile given by path: the default needs no parsing here

            try:
                json.loads(text)
            except ValueError as exc:
                raise ValueError(f"compacting json for seccomp profile ({con[1]}) failed: {exc}") from None
            opt = f"seccomp={compact_json(text)}"
        out.append(opt)
    return out


def parse_security_opts(opts: list[str] | None) -> SecurityOptions:
    """dockerd's parseSecurityOpt: `invalid --security-opt N` as its errors."""
    sec = SecurityOptions()
    labels = []
    for opt in opts or []:
        if opt == "no-new-privileges":
            sec.no_new_privileges = True
            continue
        if opt == "disable":
            labels.append("disable")
            continue
        if "=" in opt:
            key, value = opt.split("=", 1)
        elif ":" in opt:
            key, value = opt.split(":", 1)
        else:
            raise errdefs.InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        if key == "label":
            labels.append(value)
        elif key == "apparmor":
            sec.apparmor = value
        elif key == "seccomp":
            sec.seccomp = value
        elif key == "no-new-privileges" and value in _TRUE + _FALSE:
            sec.no_new_privileges = value in _TRUE
        else:
            raise errdefs.InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    sec.labels = tuple(labels)
    return sec


def inspect_security_opt(sent: list[str], privileged: bool) -> list[str] | None:
    """HostConfig.SecurityOpt as dockerd records it: what was sent, `label=disable` for --privileged."""
    out = list(sent)
    if privileged and "label=disable" not in out:
        out.append("label=disable")
    return out or None
