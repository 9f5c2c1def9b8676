"""Whole images in a layout: build one from a rootfs directory, unpack one into a runtime bundle."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import mediatypes as mt
from . import platform as platforms
from . import runtime
from .digest import Digest
from .errors import InvalidDocument, OCIError
from .fsutil import atomic_write
from .layer import apply_layer, create_layer
from .layout import Layout
from .manifest import go_json


@dataclass(frozen=True)
class Built:
    manifest: dict   # descriptor of the manifest, as tagged in index.json
    config: dict     # descriptor of the image config
    layers: list[dict]


def _created(epoch: int | None) -> str:
    if epoch is None:
        env = os.environ.get("SOURCE_DATE_EPOCH", "")
        epoch = int(env) if env.isdigit() else None
    when = _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc) if epoch is not None else _dt.datetime.now(_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if epoch is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_from_rootfs(layout: Layout, rootfs: str | os.PathLike, tag: str, *, container_config: dict | None = None,
                      compression: str = "gzip", created_by: str = "pyoci: rootfs", epoch: int | None = None,
                      platform: str | None = None) -> Built:
    """One-layer image of the tree `rootfs`, stored in `layout` and tagged `tag`.

    container_config is the image config's `config` (Cmd, Env, WorkingDir, …). With `epoch` (or
    $SOURCE_DATE_EPOCH) the layer mtimes and `created` are clamped, so the digest is reproducible.
    """
    plat = platforms.parse(platform) if platform else platforms.default()
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    # The layer is written into the layout's blob dir first (same filesystem), then committed by digest.
    staging = layout.path / "blobs"
    fd, tmp = tempfile.mkstemp(dir=staging, prefix=".tmp-layer-")
    os.close(fd)
    try:
        info = create_layer(rootfs, tmp, compression, mtime=epoch)
        with open(tmp, "rb") as f:
            layout.put_blob(f, info.digest, info.size)
    finally:
        os.unlink(tmp)
    layer = info.descriptor()
    created = _created(epoch)
    config: dict[str, Any] = {"created": created, "architecture": plat.architecture, "os": plat.os}
    if plat.variant and not (plat.architecture == "arm64" and plat.variant == "v8"):
        config["variant"] = plat.variant
    config["config"] = container_config or {}
    config["rootfs"] = {"type": "layers", "diff_ids": [str(info.diff_id)]}
    config["history"] = [{"created": created, "created_by": created_by}]
    config_desc = layout.put_json(go_json(config), mt.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc, "layers": [layer]}
    manifest_desc = layout.put_json(go_json(manifest), mt.OCI_MANIFEST)
    tagged = layout.tag(tag, manifest_desc)
    return Built(tagged, config_desc, [layer])


def unpack(layout: Layout, ref: str, bundle: str | os.PathLike, *, platform: str | None = None,
           progress: Callable[[str], None] | None = None) -> dict:
    """Apply the image's layers into `bundle`/rootfs and write `bundle`/config.json (umoci unpack's job).

    The bundle must not exist yet; on any error it is removed again, so a failed unpack leaves nothing.
    Returns the generated runtime config.
    """
    bundle = Path(bundle)
    if bundle.exists():
        raise OCIError(f"{bundle}: bundle directory already exists")
    _, manifest = layout.manifest_for(ref, platform)
    config = layout.read_json(manifest["config"])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = manifest.get("layers") or []
    if len(diff_ids) != len(layers):
        raise InvalidDocument(f"image {ref}: {len(layers)} layers but {len(diff_ids)} rootfs.diff_ids in its config")
    rootfs = bundle / "rootfs"
    try:
        rootfs.mkdir(parents=True)
        for i, (layer, diff_id) in enumerate(zip(layers, diff_ids), 1):
            if progress:
                progress(f"applying layer {i}/{len(layers)} {Digest.parse(layer['digest']).short}")
            with layout.open_blob(layer["digest"], verify=False) as f:
                apply_layer(f, rootfs, expected_digest=layer["digest"], expected_diff_id=diff_id)
        spec = runtime.spec_for_image(config, rootfs)
        atomic_write(bundle / "config.json", json.dumps(spec, indent="\t").encode())
    except BaseException:
        shutil.rmtree(bundle, ignore_errors=True)
        raise
    return spec
