"""The set of proxies behind the API, with Toxiproxy's rules for each change.

Every change goes through one lock, as Toxiproxy's collection mutex does, so two API
calls never re-wire the same links at once. Each method validates its JSON body and
raises `ApiError` with Toxiproxy's status and message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from chaos.errors import ApiError
from chaos.proxy import Proxy
from chaos.toxics import Toxic, apply_toxic_update, parse_new_toxic

log = structlog.get_logger("chaos.collection")


@dataclass(frozen=True)
class ProxySpec:
    """The proxy fields of a request body; None where the body left a field out."""

    name: str | None
    listen: str | None
    upstream: str | None
    enabled: bool | None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_proxy_spec(body: object, where: str = "") -> ProxySpec:
    """Read name/listen/upstream/enabled; wrong JSON types are a bad request body."""
    if not isinstance(body, dict):
        raise ApiError.bad_request_body(f"expected a JSON object{where}, got {_show(body)}")

    def text(key: str) -> str | None:
        value = body.get(key)
        if value is None or isinstance(value, str):
            return value
        raise ApiError.bad_request_body(
            f"field {key!r}{where} must be a string, got {_show(value)}"
        )

    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ApiError.bad_request_body(
            f"field 'enabled'{where} must be true or false, got {_show(enabled)}"
        )
    return ProxySpec(text("name"), text("listen"), text("upstream"), enabled)


@dataclass
class PopulateResult:
    """What /populate made, and the error that stopped it part-way, if any."""

    proxies: list[Proxy]
    error: ApiError | None


class ProxyCollection:
    """All proxies of one server, by name."""

    def __init__(self) -> None:
        self._proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()

    def proxies(self) -> Mapping[str, Proxy]:
        return dict(self._proxies)

    def get(self, name: str) -> Proxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise ApiError.proxy_not_found()
        return proxy

    async def create(self, body: object) -> Proxy:
        spec = parse_proxy_spec(body)
        if not spec.name:
            raise ApiError.missing_field("name")
        if not spec.upstream:
            raise ApiError.missing_field("upstream")
        async with self._lock:
            if spec.name in self._proxies:
                raise ApiError.proxy_exists()
            proxy = Proxy(spec.name, spec.listen or "", spec.upstream)
            if spec.enabled is None or spec.enabled:
                await proxy.start()
            self._proxies[proxy.name] = proxy
        return proxy

    async def update(self, name: str, body: object) -> Proxy:
        """Fields left out keep their value; a new listen or upstream restarts the proxy."""
        proxy = self.get(name)
        spec = parse_proxy_spec(body)
        async with self._lock:
            await proxy.update(
                listen=proxy.listen if spec.listen is None else spec.listen,
                upstream=proxy.upstream if spec.upstream is None else spec.upstream,
                enabled=proxy.enabled if spec.enabled is None else spec.enabled,
            )
        return proxy

    async def delete(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            proxy.stop()
            del self._proxies[name]
            await proxy.remove_all_toxics()

    async def populate(self, body: object) -> PopulateResult:
        """Create or replace many proxies; one whose listen and upstream match is kept.

        All entries are checked before any proxy changes. A failure part-way leaves the
        proxies handled so far in place and reports them with the error.
        """
        if not isinstance(body, list):
            raise ApiError.bad_request_body(f"expected a JSON array, got {_show(body)}")
        specs = [parse_proxy_spec(entry, f" at proxy {i}") for i, entry in enumerate(body, 1)]
        for i, spec in enumerate(specs, 1):
            if not spec.name:
                raise ApiError.missing_field(f"name at proxy {i}")
            if not spec.upstream:
                raise ApiError.missing_field(f"upstream at proxy {i}")
        done: list[Proxy] = []
        async with self._lock:
            for spec in specs:
                assert spec.name and spec.upstream
                try:
                    done.append(await self._add_or_replace(spec))
                except ApiError as exc:
                    return PopulateResult(done, exc)
        return PopulateResult(done, None)

    async def _add_or_replace(self, spec: ProxySpec) -> Proxy:
        assert spec.name and spec.upstream
        listen = spec.listen or ""
        existing = self._proxies.get(spec.name)
        if existing is not None:
            if not await existing.differs(listen, spec.upstream):
                return existing
            existing.stop()
        proxy = Proxy(spec.name, listen, spec.upstream)
        if spec.enabled is None or spec.enabled:
            await proxy.start()
        if existing is not None:
            await existing.remove_all_toxics()
        self._proxies[spec.name] = proxy
        return proxy

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (which ends timeout-held connections)."""
        async with self._lock:
            for proxy in list(self._proxies.values()):
                await proxy.start()
                await proxy.remove_all_toxics()

    async def add_toxic(self, proxy_name: str, body: object) -> Toxic:
        async with self._lock:
            proxy = self.get(proxy_name)
            toxic = parse_new_toxic(body, lambda name: proxy.find_toxic(name) is not None)
            proxy.add_toxic(toxic)
        log.info(
            "toxic_added",
            proxy=proxy.name,
            toxic=toxic.name,
            type=toxic.kind.name,
            stream=toxic.stream,
            toxicity=toxic.toxicity,
            attributes=toxic.attributes,
        )
        return toxic

    def get_toxic(self, proxy_name: str, toxic_name: str) -> Toxic:
        toxic = self.get(proxy_name).find_toxic(toxic_name)
        if toxic is None:
            raise ApiError.toxic_not_found()
        return toxic

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: object) -> Toxic:
        async with self._lock:
            proxy = self.get(proxy_name)
            toxic = self.get_toxic(proxy_name, toxic_name)
            apply_toxic_update(toxic, body)
            await proxy.restart_toxic(toxic)
        log.info(
            "toxic_updated",
            proxy=proxy_name,
            toxic=toxic.name,
            toxicity=toxic.toxicity,
            attributes=toxic.attributes,
        )
        return toxic

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        async with self._lock:
            proxy = self.get(proxy_name)
            toxic = self.get_toxic(proxy_name, toxic_name)
            await proxy.remove_toxic(toxic)
        log.info("toxic_removed", proxy=proxy_name, toxic=toxic_name)

    async def close(self) -> None:
        """Stop every proxy: listeners closed, connections dropped."""
        async with self._lock:
            for proxy in self._proxies.values():
                proxy.stop()
            for proxy in self._proxies.values():
                await proxy.remove_all_toxics()
            self._proxies.clear()


def proxies_json(proxies: list[Proxy]) -> list[dict[str, Any]] | None:
    # Toxiproxy marshals an empty Go slice here as null, and clients may rely on it.
    return [proxy.to_json() for proxy in proxies] or None
