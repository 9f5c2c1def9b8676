"""Exporters, with buildx's --output syntax: `type=oci,dest=DIR|FILE[,tar=false]`, `type=docker,dest=FILE`,
`type=local,dest=DIR` (`-o DIR` shorthand), `type=registry` (= --push). Every file output is written
to a temporary name next to the destination and renamed into place: a failed build or export leaves
nothing half-written there.
"""

from __future__ import annotations

import os
import shutil
import sys
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Sequence

from pyoci.archive_docker import write_docker_archive
from pyoci.archive_oci import write_oci_archive
from pyoci.errors import OCIError
from pyoci.layer import apply_layer
from pyoci.layout import REF_NAME, Layout, ordered_descriptor
from pyoci.reference import parse as parse_reference

from .errors import BuildError

IMAGE_NAME = "io.containerd.image.name"


@dataclass
class OutputSpec:
    type: str
    dest: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def parse_output(value: str) -> OutputSpec:
    """buildx's --output: CSV key=value pairs; a bare path is `type=local,dest=PATH`; `-` a tar to stdout
    is not supported."""
    if "=" not in value:
        return OutputSpec("local", value)
    attrs: dict[str, str] = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise BuildError(f"invalid --output {value!r}: {part!r} is not key=value")
        attrs[k.strip().lower()] = v.strip()
    typ = attrs.pop("type", "")
    dest = attrs.pop("dest", "")
    if typ not in ("oci", "docker", "local", "registry", "image", "tar"):
        raise BuildError(f"invalid --output {value!r}: unknown type {typ!r} (oci, docker, local, registry)")
    if typ == "image":
        typ = "registry" if attrs.get("push", "").lower() == "true" else "image"
    if typ in ("oci", "docker", "local", "tar") and not dest:
        raise BuildError(f"--output type={typ} needs dest=")
    if dest == "-":
        raise BuildError("not supported yet: --output to stdout")
    return OutputSpec(typ, dest, attrs)


def _tag_part(tag: str) -> str:
    try:
        return parse_reference(tag).tag or "latest"
    except OCIError:
        return tag


def _full_name(tag: str) -> str:
    try:
        r = parse_reference(tag)
        return f"{r.name}:{r.tag or 'latest'}"
    except OCIError:
        return tag


def _write_layout(src: Layout, manifest: dict, path: str, tags: Sequence[str]) -> None:
    out = Layout.init(path)
    out.copy_from(src, manifest)
    desc = dict(manifest)
    if tags:
        desc["annotations"] = {IMAGE_NAME: _full_name(tags[0]), REF_NAME: _tag_part(tags[0])}
    with out.edit_index() as index:
        index["manifests"] = [ordered_descriptor(desc)]


def _replace_dir(tmp: str, dest: str) -> None:
    if os.path.lexists(dest):
        old = f"{dest}.old-{os.getpid()}"
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)


def _tmp_beside(dest: str, suffix: str = "") -> str:
    parent = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.tmp-", suffix=suffix, dir=parent)


def _pyctr() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "pyctr")
    found = beside if os.access(beside, os.X_OK) else shutil.which("pyctr")
    if not found:
        raise BuildError("--load: pyctr not found (run `make install`)")
    return found


def _load_into_daemon(layout: Layout, manifest: dict, names: list[str], info: Callable[[str], None]) -> None:
    """--load: the image as a docker-archive into pycontainerd through `pyctr load`, as buildx uses `docker load`."""
    if not names:
        raise BuildError("--load needs a tag (-t NAME)")
    fd, tmp = tempfile.mkstemp(prefix="pybuild-load-", suffix=".tar")
    os.close(fd)
    try:
        write_docker_archive(tmp, [(layout, manifest, names)])
        r = subprocess.run([_pyctr(), "load", "-i", tmp], capture_output=True, text=True)
        if r.returncode != 0:
            lines = (r.stderr or r.stdout).strip().splitlines()
            raise BuildError(f"--load: {lines[-1] if lines else 'pyctr load failed'}")
        for line in r.stdout.splitlines():
            info(line)
    finally:
        os.unlink(tmp)
    info("importing to pycontainerd done")


def export(spec: OutputSpec, layout: Layout, manifest: dict, chain_layers: list[dict], tags: Sequence[str],
           info: Callable[[str], None]) -> None:
    """Write the image (`manifest` in the cache `layout`) as `spec` says."""
    try:
        _export(spec, layout, manifest, chain_layers, tags, info)
    except OCIError as e:
        if isinstance(e, BuildError):
            raise
        raise BuildError(f"failed to export to {spec.type}{' ' + spec.dest if spec.dest else ''}: {e}") from None
    except OSError as e:
        raise BuildError(f"failed to export to {spec.dest or spec.type}: {e.strerror or e}") from None


def _export(spec: OutputSpec, layout: Layout, manifest: dict, chain_layers: list[dict], tags: Sequence[str],
            info: Callable[[str], None]) -> None:
    if spec.type == "oci":
        as_tar = spec.attrs.get("tar", "true").lower() != "false"
        if as_tar:
            tmp = _tmp_beside(spec.dest)
            try:
                _write_layout(layout, manifest, tmp, tags)
                write_oci_archive(Layout.open(tmp), spec.dest)  # atomic itself
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            info(f"sending tarball {spec.dest} done")
        else:
            tmp = _tmp_beside(spec.dest)
            try:
                _write_layout(layout, manifest, tmp, tags)
                os.chmod(tmp, 0o755)
                _replace_dir(tmp, spec.dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            info(f"writing OCI layout {spec.dest} done")
    elif spec.type == "docker":
        names = list(tags)
        if spec.attrs.get("name"):
            names += spec.attrs["name"].split(",")
        if spec.dest:
            write_docker_archive(spec.dest, [(layout, manifest, names)])
            info(f"sending tarball {spec.dest} done")
        else:
            _load_into_daemon(layout, manifest, names, info)
    elif spec.type in ("local", "tar"):
        tmp = _tmp_beside(spec.dest)
        try:
            os.chmod(tmp, 0o755)
            for layer in chain_layers:
                with layout.open_blob(layer["digest"], verify=False) as f:
                    apply_layer(f, tmp, expected_digest=layer["digest"])
            if spec.type == "tar":
                r = subprocess.run(["tar", "-C", tmp, "-cf", spec.dest + ".part", "."], capture_output=True, text=True)
                if r.returncode != 0:
                    raise BuildError(f"failed to write {spec.dest}: {r.stderr.strip()}")
                os.rename(spec.dest + ".part", spec.dest)
            elif os.path.isdir(spec.dest) and any(os.scandir(spec.dest)):
                # an existing directory (maybe the cwd): add the files into it, as buildx does
                r = subprocess.run(["cp", "-a", "--", tmp + "/.", spec.dest], capture_output=True, text=True)
                if r.returncode != 0:
                    raise BuildError(f"failed to copy files to {spec.dest}: {r.stderr.strip()}")
            else:
                if os.path.isdir(spec.dest):
                    os.rmdir(spec.dest)
                os.rename(tmp, spec.dest)
                tmp = ""
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        info(f"copying files to {spec.dest} done")
    elif spec.type == "registry":
        names = list(tags) or ([spec.attrs["name"]] if spec.attrs.get("name") else [])
        if not names:
            raise BuildError("tag is needed when pushing to registry")
        for name in names:
            ref = parse_reference(name)
            local_tag = "push-" + str(manifest["digest"]).split(":", 1)[1][:32]
            layout.tag(local_tag, manifest)
            from pyoci.registry import copy as regcopy

            digest = regcopy.push(layout, local_tag, ref)
            info(f"pushing {ref} {digest} done")
    elif spec.type == "image":
        info("the image stays in the build cache (image output without push=true)")
