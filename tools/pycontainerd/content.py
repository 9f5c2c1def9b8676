"""The content store: one OCI layout of verified blobs shared by all namespaces, with per-namespace
records (labels, creation time) deciding what each namespace sees, as containerd's metadata store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from pyoci.digest import Digest
from pyoci.layout import Layout

from . import errdefs
from .metadata import NamespacedTables, now

CHUNK = 1 << 20


class ContentStore:
    def __init__(self, path: str | os.PathLike, metadata: str | os.PathLike, daemon=None) -> None:
        self.path = Path(path)
        self.layout = Layout.init(self.path)
        self.records = NamespacedTables(metadata, "content.json", "content")
        self.daemon = daemon

    # -- blobs ------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.layout.blob_path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.layout.has_blob(digest)

    def ingest(self, namespace: str, data: "bytes | BinaryIO | Iterable[bytes]", expected: str | None = None,
               size: int | None = None, labels: dict | None = None, lease: str | None = None) -> dict:
        """Write a blob (verified before commit) and record it in `namespace`; returns its info.
        With a lease the blob is protected from gc from before the first byte is written."""
        if lease and expected:
            self.daemon.leases.add_resource(namespace, lease, "content", expected)
        blob = self.layout.put_blob(data, expected, size)
        if lease and not expected:
            self.daemon.leases.add_resource(namespace, lease, "content", str(blob.digest))
        return self.record(namespace, str(blob.digest), blob.size, labels)

    def record(self, namespace: str, digest: str, size: int | None = None, labels: dict | None = None) -> dict:
        """Make an already stored blob visible in `namespace`."""
        Digest.parse(digest)
        if size is None:
            size = self.layout.blob_size(digest)
        table = self.records(namespace)
        row = table.find(digest)
        if row is None:
            stamp = now()
            row = {"digest": digest, "size": size, "created_at": stamp, "updated_at": stamp, "labels": {}}
        if labels:
            row["labels"] = {**row["labels"], **labels}
            row["updated_at"] = now()
        return table.put(digest, row)

    # -- namespace view ---------------------------------------------------------------------------
    def info(self, namespace: str, digest: str) -> dict:
        Digest.parse(digest)
        row = self.records(namespace).find(digest)
        if row is None or not self.layout.has_blob(digest):
            raise errdefs.NotFound(f"content digest {digest}: not found")
        return row

    def list(self, namespace: str) -> list[dict]:
        return sorted((r for r in self.records(namespace).list() if self.layout.has_blob(r["digest"])),
                      key=lambda r: r["digest"])

    def update(self, namespace: str, digest: str, labels: dict, fields: list[str] | None = None) -> dict:
        self.info(namespace, digest)

        def change(row: dict) -> None:
            if fields:
                for f in fields:
                    key = f[len("labels."):] if f.startswith("labels.") else None
                    if key is None:
                        continue
                    if labels.get(key):
                        row["labels"][key] = labels[key]
                    else:
                        row["labels"].pop(key, None)
            else:
                row["labels"] = {k: v for k, v in labels.items() if v}
            row["updated_at"] = now()

        return self.records(namespace).update(digest, change)

    def delete(self, namespace: str, digest: str) -> None:
        """Forget the blob in `namespace`; the bytes go at the next gc if nothing else needs them."""
        self.info(namespace, digest)
        self.records(namespace).delete(digest)

    def open(self, namespace: str, digest: str) -> BinaryIO:
        self.info(namespace, digest)
        return open(self.layout.blob_path(digest), "rb")

    def read_chunks(self, namespace: str, digest: str, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        with self.open(namespace, digest) as f:
            f.seek(offset)
            left = size if size > 0 else None
            while left is None or left > 0:
                chunk = f.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def read_json(self, namespace: str, digest: str) -> dict:
        import json

        with self.open(namespace, digest) as f:
            try:
                return json.loads(f.read())
            except ValueError as exc:
                raise errdefs.InvalidArgument(f"content {digest}: not JSON: {exc}") from None

    def all_blobs(self) -> list[str]:
        out = []
        root = self.path / "blobs"
        for alg in root.iterdir() if root.is_dir() else []:
            if alg.is_dir():
                out.extend(f"{alg.name}:{p.name}" for p in alg.iterdir()
                           if p.is_file() and not p.name.startswith(".") and "." not in p.name)
        return out
