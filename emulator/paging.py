"""Key Vault's list paging: `maxresults` (1-25) and an absolute `nextLink` with `$skiptoken`.

The skip token is the base64url of the last key of the page (a name or a sequence
number), so pages stay correct while objects are added or deleted between requests.
`latest_page`, `versions_page` and `deleted_page` are the three store listings every
object kind pages the same way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from emulator.errors import bad_parameter
from emulator.state import VaultState
from emulator.store import DeletedObject, StoredVersion

MAX_RESULTS = 25
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Page size and the key after which this page starts (None: from the beginning)."""

    size: int
    after: str | None


def page_request(request: web.Request) -> PageRequest:
    """Read `maxresults` and `$skiptoken` from a list request."""
    raw = request.query.get("maxresults")
    size = MAX_RESULTS
    if raw is not None:
        try:
            size = int(raw)
        except ValueError:
            raise bad_parameter(f"maxresults {raw!r} is not an integer") from None
        if not 1 <= size <= MAX_RESULTS:
            raise bad_parameter(f"maxresults {size} is out of range: it must be 1 to {MAX_RESULTS}")
    token = request.query.get("$skiptoken")
    after = None
    if token:
        try:
            after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad_parameter("$skiptoken is not a token this vault issued") from None
    return PageRequest(size, after)


def page_body(
    request: web.Request,
    vault_url: str,
    page: PageRequest,
    rows: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    key: Callable[[T], str],
) -> dict[str, Any]:
    """The list response for rows fetched with `limit=page.size + 1`.

    The extra row only tells whether another page exists; it is not returned.
    """
    has_more = len(rows) > page.size
    shown = rows[: page.size]
    next_link = None
    if has_more and shown:
        token = base64.urlsafe_b64encode(key(shown[-1]).encode()).rstrip(b"=").decode()
        query = {"api-version": request.query.get("api-version", ""), "$skiptoken": token}
        query["maxresults"] = str(page.size)
        next_link = f"{vault_url}{request.path}?{urlencode(query, safe='$')}"
    return {"value": [render(r) for r in shown], "nextLink": next_link}


def after_seq(page: PageRequest) -> int | None:
    """The sequence number a version list resumes after; 400 for a token that is not one."""
    if page.after is None:
        return None
    try:
        return int(page.after)
    except ValueError:
        raise bad_parameter("$skiptoken is not a token this vault issued") from None


def by_name(row: StoredVersion | DeletedObject) -> str:
    """Paging key of lists ordered by object name (Key Vault names ignore case)."""
    return row.name.lower()


def by_seq(row: StoredVersion) -> str:
    """Paging key of version lists, ordered by when each version was written."""
    return str(row.seq)


def latest_page(
    request: web.Request,
    state: VaultState,
    kind: str,
    render: Callable[[StoredVersion], dict[str, Any]],
) -> dict[str, Any]:
    """One page of the latest version of each live object of `kind`, by name."""
    page = page_request(request)
    rows = state.store.list_latest(kind, page.after, page.size + 1)
    return page_body(request, state.vault_url(request), page, rows, render, by_name)


def versions_page(
    request: web.Request,
    state: VaultState,
    kind: str,
    name: str,
    render: Callable[[StoredVersion], dict[str, Any]],
) -> dict[str, Any]:
    """One page of the live versions of one object, oldest first."""
    page = page_request(request)
    rows = state.store.list_versions(kind, name, after_seq(page), page.size + 1)
    return page_body(request, state.vault_url(request), page, rows, render, by_seq)


def deleted_page(
    request: web.Request,
    state: VaultState,
    kind: str,
    render: Callable[[DeletedObject], dict[str, Any]],
    *,
    page: PageRequest | None = None,
) -> dict[str, Any]:
    """One page of the soft-deleted objects of `kind`, by name.

    `page` is for a caller that checks more of the query after `maxresults` and
    `$skiptoken` (as certificates check `includePending`) and so reads it first.
    """
    if page is None:
        page = page_request(request)
    rows = state.store.list_deleted(kind, page.after, page.size + 1)
    return page_body(request, state.vault_url(request), page, rows, render, by_name)
