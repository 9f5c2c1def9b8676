"""`pyregistry garbage-collect`: mark and sweep as Distribution's `registry garbage-collect`, through the driver.

Mark: in every repository, every manifest revision (or, with --delete-untagged, only the tagged ones),
what it names (config, layers, `blobs`), the child manifests of an index (recursively) and the
manifests whose `subject` is a marked manifest (referrers). With --delete-untagged, revisions not
reached from a tag are deleted (tags pointing at them go too). Sweep: every blob not marked is deleted,
and its links in the repositories with it.

Safe beside a running server, by these rules:
  - upload sessions live outside the blob store and are never touched;
  - a blob younger than `grace` (default one hour) is kept: a layer committed just now whose manifest is
    still on its way is not collected under the pusher. A blob's age counts from its last write, re-push
    (an upload that deduplicates to it) or cross-repo mount;
  - the driver's sweep lock is held from the second walk of the repositories to the end of the sweep, and
    the server holds the same lock (shared) around each check-then-link step: a manifest pushed during the
    mark phase protects its blobs, and one validated against a blob being swept cannot be linked before the
    sweep ends (it is then validated again and refused).
A manifest that cannot be parsed stops the run before anything is deleted (marks would be incomplete).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from pyoci import digest as dg

from .config import Config
from .errors import ConfigError
from .storage.base import StorageDriver

DEFAULT_GRACE = 3600.0  # seconds

Emit = Callable[[str], None]


class GCError(ConfigError):
    """garbage-collect could not complete its mark phase; nothing was deleted."""


@dataclass
class GCReport:
    marked: set[str] = field(default_factory=set)                  # blob digests kept (manifests included)
    eligible: list[str] = field(default_factory=list)              # unmarked blobs
    deleted: list[str] = field(default_factory=list)               # blobs removed (empty on a dry run)
    kept_young: list[str] = field(default_factory=list)            # unmarked but within the grace period
    manifests: list[tuple[str, str]] = field(default_factory=list)  # (repo, digest) untagged, eligible
    dry_run: bool = False


def _refs(doc: dict) -> tuple[list[str], list[str], str | None]:
    """(blob digests, child manifest digests, subject digest) named by a manifest of any known kind."""
    blobs, children = [], []
    for key in ("layers", "blobs"):
        for d in doc.get(key) or []:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                blobs.append(d["digest"])
    cfg = doc.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
        blobs.append(cfg["digest"])
    for layer in doc.get("fsLayers") or []:  # Docker schema 1
        if isinstance(layer, dict) and isinstance(layer.get("blobSum"), str):
            blobs.append(layer["blobSum"])
    for d in doc.get("manifests") or []:
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            children.append(d["digest"])
    subject = doc.get("subject")
    subj = subject.get("digest") if isinstance(subject, dict) and isinstance(subject.get("digest"), str) else None
    return [b for b in blobs if dg.is_valid(b)], [c for c in children if dg.is_valid(c)], subj


class _Marker:
    def __init__(self, driver: StorageDriver, emit: Emit) -> None:
        self.driver = driver
        self.emit = emit
        self.docs: dict[str, tuple[list[str], list[str], str | None] | None] = {}

    async def refs(self, digest: str) -> tuple[list[str], list[str], str | None] | None:
        if digest not in self.docs:
            data = await self.driver.read_blob(digest)
            if data is None:
                self.docs[digest] = None  # a dangling revision link: nothing to mark
            else:
                try:
                    doc = json.loads(data)
                    if not isinstance(doc, dict):
                        raise ValueError("not a JSON object")
                except ValueError as e:
                    raise GCError(f"garbage-collect: manifest {digest} does not parse ({e}); nothing deleted")
                self.docs[digest] = _refs(doc)
        return self.docs[digest]

    async def mark_repo(self, name: str, revisions: set[str], roots: set[str], marked: set[str]) -> set[str]:
        """Mark from `roots` in one repository; returns the revisions reached."""
        reached: set[str] = set()
        stack = list(roots)
        referrers: dict[str, list[str]] = {}
        for rev in revisions:
            r = await self.refs(rev)
            if r is not None and r[2]:
                referrers.setdefault(r[2], []).append(rev)
        while stack:
            d = stack.pop()
            if d in reached:
                continue
            reached.add(d)
            r = await self.refs(d)
            if r is None:
                if d in revisions:
                    self.emit(f"{name}: manifest {d} is missing from the blob store, skipped")
                continue
            self.emit(f"{name}: marking manifest {d} ")
            marked.add(d)
            blobs, children, _ = r
            for b in blobs:
                if b not in marked:
                    self.emit(f"{name}: marking blob {b}")
                marked.add(b)
            stack.extend(children)
            stack.extend(referrers.get(d, ()))
        return reached


async def _mark(driver: StorageDriver, delete_untagged: bool, emit: Emit, quiet: bool = False
                ) -> tuple[set[str], list[tuple[str, str]], dict[str, tuple[str, ...]]]:
    marker = _Marker(driver, (lambda _: None) if quiet else emit)
    marked: set[str] = set()
    untagged: list[tuple[str, str]] = []
    links: dict[str, tuple[str, ...]] = {}
    async for repo in driver.walk():
        if not quiet:
            emit(repo.name)
        links[repo.name] = repo.layers
        revisions = set(repo.manifests)
        roots = set(repo.tags.values()) if delete_untagged else revisions | set(repo.tags.values())
        reached = await marker.mark_repo(repo.name, revisions, roots, marked)
        for rev in sorted(revisions - reached):
            if not quiet:
                emit(f"manifest eligible for deletion: {rev}")
            untagged.append((repo.name, rev))
    return marked, untagged, links


async def collect(driver: StorageDriver, dry_run: bool = False, delete_untagged: bool = False,
                  grace: float = DEFAULT_GRACE, emit: Emit = print, now: float | None = None) -> GCReport:
    report = GCReport(dry_run=dry_run)
    marked, untagged, links = await _mark(driver, delete_untagged, emit)
    report.manifests = untagged
    if dry_run:
        await _sweep(driver, report, marked, links, grace, emit, now)
        return report
    # From here to the end of the sweep no server is inside a check-then-link step (driver.reference_lock):
    # a manifest validated before is linked now and marked by the second pass, one validated after finds
    # the swept blobs gone.
    async with driver.sweep_lock():
        for repo, digest in untagged:
            await driver.delete_manifest(repo, digest)
        # Second pass: what was pushed while we marked is marked too.
        # Every revision is a root now: one pushed by digest meanwhile is about to be tagged.
        again, _, links2 = await _mark(driver, False, emit, quiet=True)
        marked |= again
        for name, layers in links2.items():
            links[name] = tuple(sorted(set(links.get(name, ())) | set(layers)))
        await _sweep(driver, report, marked, links, grace, emit, now)
    return report


async def _sweep(driver: StorageDriver, report: GCReport, marked: set[str], links: dict[str, tuple[str, ...]],
                 grace: float, emit: Emit, now: float | None) -> None:
    report.marked = marked
    blobs = await driver.list_blobs()
    report.eligible = [d for d in blobs if d not in marked]
    emit(f"\n{len(marked)} blobs marked, {len(report.eligible)} blobs and {len(report.manifests)} manifests "
         f"eligible for deletion")
    now = time.time() if now is None else now
    for d in report.eligible:
        emit(f"blob eligible for deletion: {d}")
        if report.dry_run:
            continue
        if grace > 0 and _age(await driver.stat_blob(d), now) < grace:
            report.kept_young.append(d)
            continue
        await driver.delete_blob(d)
        report.deleted.append(d)
    gone = set(report.deleted)
    if gone:
        for name, layers in links.items():
            for d in layers:
                if d in gone:
                    await driver.unlink_blob(name, d)
    if report.kept_young:
        emit(f"{len(report.kept_young)} blobs kept: younger than the grace period of {grace:g}s")


def _age(info, now: float) -> float:
    """Seconds since the blob's content was written: the driver's `modified` time if its BlobInfo has one,
    else the mtime of its file; a driver with neither gives no age (treated as old, as Distribution)."""
    modified = getattr(info, "modified", None)
    if isinstance(modified, (int, float)):
        return now - modified
    path = getattr(info, "path", None)
    if not path:
        return float("inf")
    try:
        return now - os.stat(path).st_mtime
    except OSError:
        return float("inf")


def open_driver(config: Config) -> StorageDriver:
    from .storage.filesystem import FilesystemDriver

    return FilesystemDriver(config.root)


def run(config: Config, dry_run: bool, delete_untagged: bool, grace: float = DEFAULT_GRACE,
        emit: Emit | None = None) -> GCReport:
    """Garbage-collect the storage `config` names, printing Distribution-like lines to stdout."""
    if emit is None:
        def emit(line: str) -> None:
            print(line, file=sys.stdout, flush=False)
    driver = open_driver(config)

    async def main() -> GCReport:
        try:
            return await collect(driver, dry_run, delete_untagged, grace, emit)
        finally:
            await driver.close()

    return asyncio.run(main())
