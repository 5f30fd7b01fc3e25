"""A full offline copy of a pair's backups into another store (a local folder:
`kvdr snapshot export DIR`), object by object, write-once.

Objects are copied as they are (still encrypted: the copy opens only with a KEK); one
already present with the same SHA-256 is skipped, so an export can be repeated to catch
up. One present with other bytes (equal size or not) is never overwritten: the export
stops naming it, since either copy may be the damaged one. The head blob is copied last,
so a copy never claims more than it holds.

`write_recovery_kit` adds the offline recovery kit: the pinned signers (ids, algorithms,
public halves as PEM files, and a `[[backups.signers]]` snippet that pins them), so a
break-glass machine can check every signature with the kit alone, no vault. An HMAC
signer has no public half: the kit names its id, and checking needs its key file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from backups import paths
from backups.keks import KekRing
from backups.stores import ObjectConflict, put_once
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
        try:
            blob = await source.get(info.name)
        except BlobNotFound:
            continue  # deleted by retention meanwhile
        if info.name in existing and await _already_copied(
            dest, info.name, blob.data, existing[info.name]
        ):
            report.already_there += 1
            continue
        await put_once(dest, info.name, blob.data, blob.info.metadata)
        report.copied += 1
        report.bytes += len(blob.data)
    try:
        head_blob = await source.get(head)
    except BlobNotFound:
        return report
    await dest.put(head, head_blob.data)
    return report


async def _already_copied(dest: BlobStore, name: str, data: bytes, dest_size: int) -> bool:
    """True if `dest` holds exactly `data` under `name` (compared by SHA-256: an equal
    size says nothing about equal bytes); False if it is gone; other bytes raise."""
    same = dest_size == len(data)
    if same:
        try:
            copied = await dest.get(name)
        except BlobNotFound:
            return False  # removed from the copy meanwhile: write it again
        same = hashlib.sha256(copied.data).digest() == hashlib.sha256(data).digest()
    if not same:
        raise ObjectConflict(
            f"{name!r} in the export folder differs from the backup store's (SHA-256): "
            "run `kvdr snapshot verify` on both and export into an empty folder",
            blob=name,
        )
    return True


KIT = "recovery-kit"


async def write_recovery_kit(dest: BlobStore, keks: KekRing, location: str = KIT) -> list[str]:
    """Write the pinned signers into `recovery-kit/` of `dest` (`location` is where that
    folder is, for the snippet's paths); returns the blob names written."""
    entries = keks.signers.kit()
    written: list[str] = []
    snippet = [
        "# The pinned signers of these backups (written by `kvdr snapshot export`).",
        "# Paste into the [backups] section of a break-glass configuration.",
    ]
    for entry in entries:
        if "public_key" not in entry:
            snippet.append(f"# {entry['id']} ({entry['algorithm']}): needs its key file")
            continue
        name = f"{KIT}/{entry['id'].replace(':', '-')}.pub.pem"
        await dest.put(name, entry["public_key"].encode("ascii"))
        written.append(name)
        pem = f"{location}/{name.removeprefix(KIT + '/')}"
        snippet += ["", "[[backups.signers]]", 'kind = "public"', f"public_key = {json.dumps(pem)}"]
    doc = {"format": 1, "signers": entries}
    for name, data in (
        (f"{KIT}/signers.json", json.dumps(doc, indent=2, sort_keys=True) + "\n"),
        (f"{KIT}/signers.toml", "\n".join(snippet) + "\n"),
    ):
        await dest.put(name, data.encode("utf-8"))
        written.append(name)
    return written
