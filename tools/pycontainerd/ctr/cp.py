"""docker cp both ways, through the container's rootfs mount (the task's bundle rootfs, or the
snapshot mounted for the copy), paths resolved inside the rootfs as securejoin does."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import errdefs
from .backend import Backend, CLIError


def secure_join(root: str, path: str) -> str:
    """`path` inside `root`, every symlink resolved as if `root` were `/` (never escaping it)."""
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if not os.path.lexists(candidate):
            resolved.append(part)
            continue
        if os.path.islink(candidate):
            links += 1
            if links > 255:
                raise CLIError(f"Error: too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mount(mounts: list[dict], target: str) -> None:
    for m in mounts:
        opts = ",".join(m.get("options") or [])
        cmd = ["mount", "-t", m.get("type", "bind"), *(["-o", opts] if opts else []), m["source"], target]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CLIError(f"Error: mount {m.get('type')}: {proc.stderr.strip()}")


@contextmanager
def rootfs_of(b: Backend, cid: str) -> Iterator[str]:
    """The container's root filesystem: the task's mounted rootfs, else its snapshot mounted here."""
    state = b.info().get("state", "")
    bundle_rootfs = Path(state) / "tasks" / b.namespace / cid / "rootfs"
    if state and os.path.ismount(bundle_rootfs):
        yield str(bundle_rootfs)
        return
    try:
        mounts = b.call("Snapshots", "Mounts", {"key": cid}).get("mounts", [])
    except errdefs.Error as exc:
        raise CLIError(f"Error response from daemon: {exc}") from None
    tmp = tempfile.mkdtemp(prefix="pyctr-cp-")
    try:
        if len(mounts) == 1 and mounts[0].get("type") == "bind" and "rbind" not in (mounts[0].get("options") or []):
            yield mounts[0]["source"]
            return
        _mount(mounts, tmp)
        try:
            yield tmp
        finally:
            subprocess.run(["umount", tmp], capture_output=True)
    finally:
        os.rmdir(tmp)


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path
    return None, arg


def _copy(src: str, dest: str, src_spec: str, follow: bool = False) -> None:
    """docker's rules: a dir into an existing dir goes below it (`src/.` copies its contents)."""
    contents_only = src_spec.endswith("/.")
    if os.path.isdir(src) and not os.path.islink(src):
        if os.path.isdir(dest) and not contents_only:
            dest = os.path.join(dest, os.path.basename(src.rstrip("/")))
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(src))
        elif src_spec.endswith("/") or dest.endswith("/") and not os.path.exists(dest):
            raise CLIError(f"Error: destination directory {dest} does not exist")
        if os.path.islink(src) and not follow:
            if os.path.lexists(dest):
                os.unlink(dest)
            os.symlink(os.readlink(src), dest)
        else:
            shutil.copy2(src, dest)


def _copy_in(src: str, root: str, target: str) -> None:
    """`src` (host) to the container path `target`, every path resolved again inside `root`, so that a
    symlink the container holds (even one met half way down a copied tree) never leads out of it."""
    dest = secure_join(root, target)
    if os.path.isdir(src) and not os.path.islink(src):
        if not os.path.isdir(dest):
            os.mkdir(dest)
            shutil.copystat(src, dest)
        for entry in sorted(os.listdir(src)):
            _copy_in(os.path.join(src, entry), root, target.rstrip("/") + "/" + entry)
        return
    if os.path.islink(src):
        link = os.path.join(secure_join(root, os.path.dirname(target) or "/"), os.path.basename(target))
        if os.path.lexists(link) and not os.path.isdir(link):
            os.unlink(link)
        os.symlink(os.readlink(src), link)
        return
    if os.path.isdir(dest):
        raise CLIError(f"Error: cannot overwrite directory {target} with non-directory {src}")
    shutil.copy2(src, dest)


def cp(b: Backend, src_arg: str, dest_arg: str, follow: bool = False) -> None:
    src_ctr, src_path = _split(src_arg)
    dest_ctr, dest_path = _split(dest_arg)
    if (src_ctr is None) == (dest_ctr is None):
        raise CLIError("Error: copying between containers is not supported" if src_ctr else
                       "Error: must specify at least one container source")
    ref = src_ctr or dest_ctr or ""
    record = b.find_record(ref)
    if record is None:
        raise CLIError(f"Error: No such container:path: {src_arg if src_ctr else dest_arg}")
    with rootfs_of(b, record["id"]) as root:
        if src_ctr is not None:
            base = os.path.basename(src_path.rstrip("/"))
            # the last component is not followed (docker copies a symlink as a link) unless -L
            src = secure_join(root, src_path) if follow or base in ("", ".", "..") else \
                os.path.join(secure_join(root, os.path.dirname(src_path.rstrip("/")) or "/"), base)
            if not os.path.lexists(src):
                raise CLIError(f"Error: No such container:path: {ref}:{src_path}")
            if dest_path == "-":
                subprocess.run(["tar", "-C", os.path.dirname(src) or "/", "-cf", "-", os.path.basename(src)],
                               check=False)
                return
            _copy(src, os.path.abspath(dest_path), src_path, follow)
        else:
            src = os.path.abspath(src_path)
            if not os.path.lexists(src):
                raise CLIError(f"lstat {src}: no such file or directory")
            dest = secure_join(root, dest_path)
            parent = os.path.dirname(dest.rstrip("/"))
            if not os.path.isdir(parent):
                raise CLIError(f"Error: No such container:path: {ref}:{os.path.dirname(dest_path.rstrip('/'))}")
            target = dest_path if dest_path.startswith("/") else "/" + dest_path
            if os.path.isdir(dest) and not src_path.endswith("/."):
                target = target.rstrip("/") + "/" + os.path.basename(src.rstrip("/"))
            elif not os.path.isdir(dest) and dest_path.endswith("/"):
                raise CLIError(f"Error: No such container:path: {ref}:{dest_path}")
            if follow and os.path.islink(src):
                src = os.path.realpath(src)
            _copy_in(src, root, target)
