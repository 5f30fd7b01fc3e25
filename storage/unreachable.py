"""A store that could not be opened: every call fails with the reason it could not.

Where several stores stand in for one another (three control stores, a majority
needed), one that is down when a command starts must count as one unreachable store,
not stop the command: it takes the place of that store.
"""

from __future__ import annotations

from typing import NoReturn

from storage.errors import StorageUnavailable
from storage.store import Blob, BlobInfo


class UnreachableStore:
    def __init__(self, description: str, reason: str) -> None:
        self._description = description
        self.reason = reason

    @property
    def description(self) -> str:
        return self._description

    def _fail(self) -> NoReturn:
        raise StorageUnavailable(f"{self._description} could not be opened: {self.reason}")

    async def put_if_absent(
        self, name: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        self._fail()

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        self._fail()

    async def get(self, name: str) -> Blob:
        self._fail()

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        self._fail()

    async def delete(self, name: str, *, if_match: str | None = None) -> None:
        self._fail()

    async def acquire_lease(self, name: str, lease_id: str, seconds: int) -> None:
        self._fail()

    async def renew_lease(self, name: str, lease_id: str) -> None:
        self._fail()

    async def release_lease(self, name: str, lease_id: str) -> None:
        self._fail()

    async def close(self) -> None:
        return None
