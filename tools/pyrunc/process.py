"""The container process's own set-up, shared by the init and exec: user, env, cwd, PATH lookup, execve."""

from __future__ import annotations

import os

from . import syscalls as sc
from .errors import RuntimeFailure
from .specconv import Process, User


def lookpath(name: str, env: dict[str, str]) -> str:
    """Go's exec.LookPath with the container's PATH, with runc's messages."""
    def executable(p: str) -> bool:
        try:
            st = os.stat(p)
        except OSError:
            return False
        return not (st.st_mode & 0o40000) and bool(st.st_mode & 0o111)

    if "/" in name:
        if executable(name):
            return name
        if os.path.exists(name):
            raise RuntimeFailure(f'exec: "{name}": permission denied')
        raise RuntimeFailure(f'exec: "{name}": stat {name}: no such file or directory')
    for d in env.get("PATH", "").split(":"):
        p = os.path.join(d or ".", name)
        if executable(p):
            return p
    raise RuntimeFailure(f'exec: "{name}": executable file not found in $PATH')


def env_dict(env: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env:
        k, sep, v = e.partition("=")
        if k:
            out[k] = v
    return out


def home_of(uid: int) -> str:
    """HOME for uid from the container's /etc/passwd, as runc fills it in when the config leaves it unset."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2].isdigit() and int(parts[2]) == uid:
                    return parts[5]
    except OSError:
        pass
    return "/"


def set_user(user: User) -> None:
    """Switch to the configured uid/gid/groups keeping the capability sets (they are applied right after)."""
    try:
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        os.setgroups(list(user.additional_gids))
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
        sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    except OSError as e:
        raise RuntimeFailure(f"unable to set user {user.uid}:{user.gid}: {e.strerror.lower()}") from None
    os.umask(user.umask if user.umask is not None else 0o022)


def drop_bounding(proc: Process) -> bool:
    """Drop the bounding set while still uid 0 with CAP_SETPCAP (runc's finalizeNamespace order)."""
    from . import capabilities

    return capabilities.apply_bounding(proc.capabilities)


def apply_caps(proc: Process, bounding_done: bool = False) -> None:
    from . import capabilities

    capabilities.apply(proc.capabilities, bounding_done)  # ambient caps the kernel refuses are skipped there, as runc does


def apply_rlimits(proc: Process) -> None:
    if not proc.rlimits:
        return
    try:
        from . import rlimits
    except ImportError:
        import resource

        for r in proc.rlimits:
            resource.setrlimit(getattr(resource, r["type"]), (r["soft"], r["hard"]))
        return
    try:
        rlimits.apply(list(proc.rlimits))
    except RuntimeFailure as e:
        raise RuntimeFailure(f"error setting rlimits for ready process: {e.message}") from None


def no_new_privs(proc: Process) -> None:
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def prepare_exec(proc: Process) -> tuple[str, list[str], dict[str, str]]:
    """(path, argv, env) for the final execve; raises the "executable file not found" error before anything runs."""
    env = env_dict(proc.env)
    if "HOME" not in env:
        env["HOME"] = home_of(proc.user.uid)
    path = lookpath(proc.args[0], env)
    return path, list(proc.args), env
