"""A full offline copy of a pair's backups into another store (a local folder:
`kvdr snapshot export DIR`), object by object, write-once.

Objects are copied as they are (still encrypted: the copy opens only with a KEK); one
already present with the same bytes is skipped, so an export can be repeated to catch up.
The head blob is copied last, so a copy never claims more than it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from backups import paths
from backups.stores import put_once
from storage.errors import BlobNotFound
from storage.store import BlobStore


@dataclass
class ExportReport:
    pair: str
    copied: int = 0
    already_there: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "pair": self.pair,
            "copied": self.copied,
            "already_there": self.already_there,
            "bytes": self.bytes,
        }


async def export_pair(source: BlobStore, dest: BlobStore, pair: str) -> ExportReport:
    """Copy every backup blob of `pair` from `source` to `dest`."""
    report = ExportReport(pair=pair)
    head = paths.head_blob(pair)
    existing = {info.name: info.size for info in await dest.list(paths.pair_prefix(pair))}
    for info in await source.list(paths.pair_prefix(pair)):
        if info.name == head:
            continue
        if existing.get(info.name) == info.size:
            report.already_there += 1
            continue
        try:
            blob = await source.get(info.name)
        except BlobNotFound:
            continue  # deleted by retention meanwhile
        await put_once(dest, info.name, blob.data, blob.info.metadata)
        report.copied += 1
        report.bytes += len(blob.data)
    try:
        head_blob = await source.get(head)
    except BlobNotFound:
        return report
    await dest.put(head, head_blob.data)
    return report
