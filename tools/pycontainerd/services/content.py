"""Content: blobs by digest. Info/List/Update/Delete, Read (a server stream of base64 chunks) and
Write (a client stream: `{"data"}` frames then close_send; verified before it is committed)."""

from __future__ import annotations

import asyncio
import os

from pyoci.digest import Digest, VerifyingWriter

from .. import errdefs, protocol
from ..events import matcher


class ContentService:
    def __init__(self, daemon) -> None:
        self.daemon = daemon

    @property
    def store(self):
        return self.daemon.content

    def Info(self, ctx, params):
        return {"info": self.store.info(ctx.namespace, params.get("digest", ""))}

    def List(self, ctx, params):
        match = matcher(params.get("filters"))
        return {"info": [i for i in self.store.list(ctx.namespace) if match(i)]}

    def Update(self, ctx, params):
        info = params.get("info") or {}
        return {"info": self.store.update(ctx.namespace, info.get("digest", ""), info.get("labels") or {},
                                          params.get("update_mask"))}

    def Delete(self, ctx, params):
        digest = params.get("digest", "")
        self.store.delete(ctx.namespace, digest)
        self.daemon.publish(ctx.namespace, "/content/delete", {"digest": digest})
        self.daemon.schedule_gc()
        return {}

    def Read(self, ctx, params):
        """Frames `{"offset", "data"}` (base64), 1 MiB each."""
        offset = int(params.get("offset") or 0)
        for chunk in self.store.read_chunks(ctx.namespace, params.get("digest", ""), offset,
                                            int(params.get("size") or 0)):
            if ctx.cancelled.is_set():
                raise errdefs.Canceled("read canceled")
            yield {"offset": offset, "data": protocol.b64encode(chunk)}
            offset += len(chunk)

    async def Write(self, ctx, params):
        """params `{"ref", "expected", "total", "labels", "lease"}`; result `{"digest", "size"}`."""
        expected = params.get("expected") or None
        if expected:
            Digest.parse(expected)
        total = params.get("total")
        store = self.store
        lease = params.get("lease")
        if lease and expected:
            self.daemon.leases.add_resource(ctx.namespace, lease, "content", expected)
        staging = store.path / "blobs" / "sha256"
        loop = asyncio.get_running_loop()
        writer = VerifyingWriter(staging / "ingest", Digest.parse(expected) if expected else None,
                                 int(total) if total else None)
        try:
            while True:
                frame = await ctx.recv()
                if frame is None:
                    break
                data = protocol.b64decode(frame.get("data", ""))
                if data:
                    await loop.run_in_executor(None, writer.write, data)
            got = writer.verify()
        except BaseException:
            writer.abort()
            raise

        def commit() -> dict:
            # under the gc lock (in a worker thread, never blocking the loop): a collection sees
            # the blob either not yet written or written and recorded
            with self.daemon.gc.lock.shared():
                try:
                    writer.dest = os.fspath(store.blob_path(got))
                    if lease and not expected:
                        self.daemon.leases.add_resource(ctx.namespace, lease, "content", str(got))
                    if store.has_blob(got):
                        writer.abort()
                    else:
                        writer.commit(0o644)
                except BaseException:
                    writer.abort()
                    raise
                return store.record(ctx.namespace, str(got), writer.size, params.get("labels"))

        info = await loop.run_in_executor(None, commit)
        return {"digest": info["digest"], "size": info["size"]}

    def ListStatuses(self, ctx, params):
        return {"statuses": []}  # writes are streamed and committed in one call: none are left open


def register(daemon) -> None:
    daemon.server.register("Content", ContentService(daemon))
