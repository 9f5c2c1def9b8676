"""Base images: pulled from a registry with pyoci into the cache's OCI layout, or copied from an
OCI layout given as `--build-context NAME=oci-layout://DIR:TAG`. Each resolves to its config and
its chain of layers (blobs in the cache layout)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any, Mapping

from pyoci.errors import NotFound, OCIError
from pyoci.layout import Layout
from pyoci.reference import parse as parse_reference

from .cache import BuildCache, Chain, Layer
from .context import NamedContext
from .errors import BuildError


@dataclass(frozen=True)
class Image:
    config: Mapping[str, Any]  # the whole OCI image config
    chain: Chain
    digest: str  # manifest digest: the image's identity in cache keys
    name: str


class ImageResolver:
    """Resolves (once per build) image references and image-like named contexts."""

    def __init__(self, cache: BuildCache, contexts: Mapping[str, NamedContext], platform: str | None = None) -> None:
        self.cache = cache
        self.contexts = dict(contexts)
        self.platform = platform
        self._memo: dict[tuple[str, str], Image] = {}
        self._lock = threading.Lock()

    def _image_in_cache(self, desc: dict, manifest: dict, name: str) -> Image:
        layout = self.cache.layout
        config = layout.read_json(manifest["config"])
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layers = manifest.get("layers") or []
        if len(diff_ids) != len(layers):
            raise BuildError(f"image {name}: {len(layers)} layers but {len(diff_ids)} diff_ids in its config")
        chain = tuple(Layer(l["digest"], d, int(l["size"]), l["mediaType"]) for l, d in zip(layers, diff_ids))
        return Image(config, chain, desc["digest"], name)

    def image(self, ref: str, platform: str | None = None) -> Image:
        """A registry image: pulled into the cache layout unless already there (no re-check of the tag)."""
        plat = platform or self.platform
        key = ("image", f"{ref}|{plat}")
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            try:
                r = parse_reference(ref)
            except OCIError as e:
                raise BuildError(f"invalid image reference {ref!r}: {e}") from None
            tag = "pull-" + hashlib.sha256(f"{r}|{plat}".encode()).hexdigest()[:40]
            layout = self.cache.layout
            try:
                try:
                    desc, manifest = layout.manifest_for(tag, plat)
                except NotFound:
                    from pyoci.registry import copy as regcopy  # only when pulling: requests is slow to import

                    regcopy.pull(r, layout, tag=tag, platform=plat)
                    desc, manifest = layout.manifest_for(tag, plat)
            except OCIError as e:
                raise BuildError(f"failed to resolve source metadata for {r}: {e}") from None
            img = self._image_in_cache(desc, manifest, str(r))
            self._memo[key] = img
            return img

    def oci_layout(self, nc: NamedContext, platform: str | None = None) -> Image:
        plat = platform or self.platform
        key = ("layout", f"{nc.path}|{nc.ref}|{plat}")
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            try:
                src = Layout.open(nc.path)
                desc, manifest = src.manifest_for(nc.ref, plat)
                self.cache.layout.copy_from(src, desc)
            except OCIError as e:
                raise BuildError(f"--build-context {nc.name}: {nc.path}:{nc.ref}: {e}") from None
            img = self._image_in_cache(desc, manifest, f"oci-layout://{nc.path}:{nc.ref}")
            self._memo[key] = img
            return img

    def context_image(self, name: str, platform: str | None = None) -> Image | None:
        """The image a named context stands for (None for a local directory context)."""
        nc = self.contexts.get(name.lower())
        if nc is None:
            raise BuildError(f"no build context named {name!r}")
        if nc.kind == "oci-layout":
            return self.oci_layout(nc, platform)
        if nc.kind == "docker-image":
            return self.image(nc.ref, platform)
        return None

    def config_for_base(self, base: Any) -> Mapping[str, Any] | None:
        """frontend.plan's resolve_config callback."""
        if base.kind == "image":
            return self.image(base.ref, base.platform).config
        if base.kind == "context":
            img = self.context_image(base.ref, base.platform)
            return img.config if img else None
        return None
