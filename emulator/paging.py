"""Key Vault's list paging: `maxresults` (1-25) and an absolute `nextLink` with `$skiptoken`.

The skip token is the base64url of the last key of the page (a name or a sequence
number), so pages stay correct while objects are added or deleted between requests.
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
