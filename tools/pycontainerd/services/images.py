"""Images: containerd's CRUD on image records, plus the streaming helpers our thin clients use:
Pull, Push, Import, Export (progress frames as `ctr pull` shows them) and Unpack, Config, Usage."""

from __future__ import annotations

import asyncio
import os
import tempfile

from .. import errdefs, protocol
from ._streaming import run_with_progress


class ImagesService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    @property
    def store(self):
        return self.daemon.images

    def _with_size(self, ns: str, image: dict) -> dict:
        return {**image, "size": self.store.size(ns, image["target"])}

    def Get(self, ctx, params):
        return {"image": self._with_size(ctx.namespace, self.store.get(ctx.namespace, params.get("name", "")))}

    def List(self, ctx, params):
        return {"images": [self._with_size(ctx.namespace, i)
                           for i in self.store.list(ctx.namespace, params.get("filters"))]}

    def Create(self, ctx, params):
        return {"image": self.store.create(ctx.namespace, params.get("image") or {})}

    def Update(self, ctx, params):
        return {"image": self.store.update(ctx.namespace, params.get("image") or {}, params.get("update_mask"))}

    def Delete(self, ctx, params):
        """`{"name", "sync"}`: with sync the gc runs before the reply (as containerd's SynchronousDelete)."""
        self.store.delete(ctx.namespace, params.get("name", ""))
        if params.get("sync"):
            self.daemon.gc.collect()
        else:
            self.daemon.schedule_gc()
        return {}

    def Config(self, ctx, params):
        """`{"name", "platform"}` → `{"image", "manifest_descriptor", "manifest", "config", "chain_id"}`:
        what a client needs to build a container's spec and snapshot."""
        image = self.store.get(ctx.namespace, params.get("name", ""))
        desc, manifest, config = self.store.config(ctx.namespace, image["name"], params.get("platform"))
        return {"image": image, "manifest_descriptor": desc, "manifest": manifest, "config": config,
                "chain_id": self.store.chain_id(ctx.namespace, image["name"], params.get("platform")),
                "size": self.store.size(ctx.namespace, image["target"], params.get("platform"))}

    def Unpack(self, ctx, params):
        with self.daemon.leases.temporary(ctx.namespace) as lease:
            chain = self.store.unpack(ctx.namespace, params.get("name", ""), params.get("platform"), lease=lease)
        return {"chain_id": chain, "snapshotter": self.daemon.snapshots.name}

    async def Pull(self, ctx, params):
        """`{"ref", "platform", "all_platforms", "unpack" (default true), "username", "password",
        "plain_http"}`; streams `{"ref", "status", "offset", "total"}`; result `{"image"}`."""
        ref = params.get("ref") or ""
        if not ref:
            raise errdefs.InvalidArgument("pull: no image reference")

        def work(progress):
            image = self.store.pull(ctx.namespace, ref, params.get("platform"), progress,
                                    unpack=params.get("unpack", True), cancelled=ctx.cancelled,
                                    username=params.get("username", ""), password=params.get("password", ""),
                                    plain_http=params.get("plain_http"),
                                    all_platforms=bool(params.get("all_platforms")))
            return {"image": image}

        async for frame in run_with_progress(ctx, work):
            yield frame

    async def Push(self, ctx, params):
        """`{"name", "ref" (default: name), "platform", "username", "password", "plain_http"}`."""
        def work(progress):
            return self.store.push(ctx.namespace, params.get("name", ""), params.get("ref", ""),
                                   params.get("platform"), progress, params.get("username", ""),
                                   params.get("password", ""), params.get("plain_http"))

        async for frame in run_with_progress(ctx, work):
            yield frame

    async def Import(self, ctx, params):
        """`{"path"}` of an archive readable by the daemon, or the archive's bytes as client-stream
        `{"data"}` frames then close_send; `{"base_name", "platform", "unpack"}`; result `{"images"}`."""
        path = params.get("path") or ""
        tmp = None
        if not path:
            fd, tmp = tempfile.mkstemp(prefix="import-", dir=self.daemon.root)
            loop = asyncio.get_running_loop()
            with os.fdopen(fd, "wb") as f:
                while (frame := await ctx.recv()) is not None:
                    data = protocol.b64decode(frame.get("data", ""))
                    if data:
                        await loop.run_in_executor(None, f.write, data)
            path = tmp
        try:
            def work(progress):
                images = self.store.import_archive(ctx.namespace, path, params.get("base_name", ""),
                                                   params.get("platform"), params.get("unpack", True), progress)
                return {"images": images}

            async for frame in run_with_progress(ctx, work):
                yield frame
        finally:
            if tmp:
                os.unlink(tmp)

    async def Export(self, ctx, params):
        """`{"names": [...], "format": "oci"|"docker", "path", "platform", "all_platforms"}`. Without a
        path the archive comes back as `{"data"}` stream frames."""
        names = params.get("names") or ([params["name"]] if params.get("name") else [])
        path = params.get("path") or ""
        fmt = params.get("format") or "oci"
        loop = asyncio.get_running_loop()
        if path:
            await loop.run_in_executor(None, lambda: self.store.export(
                ctx.namespace, names, path, fmt, params.get("platform"), bool(params.get("all_platforms"))))
            return
        fd, tmp = tempfile.mkstemp(prefix="export-", dir=self.daemon.root)
        os.close(fd)
        try:
            await loop.run_in_executor(None, lambda: self.store.export(
                ctx.namespace, names, tmp, fmt, params.get("platform"), bool(params.get("all_platforms"))))
            with open(tmp, "rb") as f:
                while chunk := await loop.run_in_executor(None, f.read, 1 << 20):
                    yield {"data": protocol.b64encode(chunk)}
        finally:
            os.unlink(tmp)


def register(daemon) -> None:
    daemon.server.register("Images", ImagesService(daemon))
