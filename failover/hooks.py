"""Hooks run on every transition of a pair (switchover, promote, failback).

They tell the world which vault is active now: a webhook (an HTTP POST of the event as
JSON, HMAC-SHA256 signed) or a command (argv, no shell; the event as JSON on stdin and
as `KVDR_*` environment variables). DNS, the AKS Secrets Store CSI driver's
`SecretProviderClass` and App Service settings follow this way (docs/failover.md).

A hook never undoes or blocks a transition: it runs after the record is committed, and
`run_hooks` returns one `HookResult` per hook (ok, attempts, HTTP status or exit code,
a one-line error) for the caller to record in the history. It raises nothing.

Signature (webhooks): `X-Kvdr-Timestamp: <unix seconds>` and
`X-Kvdr-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`. The
timestamp is inside the signed bytes, so a receiver that refuses timestamps older than
a few minutes refuses a replayed delivery; `X-Kvdr-Delivery` stays the same across the
retries of one delivery, for receivers that deduplicate. `verify_signature` is the
receiver's side.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

log = structlog.get_logger("kvdr.failover.hooks")

SIGNATURE_HEADER = "X-Kvdr-Signature"
TIMESTAMP_HEADER = "X-Kvdr-Timestamp"
DELIVERY_HEADER = "X-Kvdr-Delivery"
EVENT_HEADER = "X-Kvdr-Event"
# A receiver accepts a timestamp this close to its own clock (GitHub and Stripe use 5
# minutes); longer than any retry schedule kvdr runs, since each attempt re-signs.
DEFAULT_TOLERANCE_SECONDS = 300.0
_ERROR_LENGTH = 200


@dataclass(frozen=True)
class TransitionEvent:
    """What happened to a pair: sent to every hook."""

    pair: str
    kind: str  # switchover, promote, failback
    from_region: str
    to_region: str
    epoch: int
    active_vault_url: str
    at: str  # ISO-8601
    by: str
    reason: str
    rto_seconds: float | None = None
    loss_items: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def environment(self) -> dict[str, str]:
        """`KVDR_PAIR`, `KVDR_KIND`, ... one variable per field; empty when unknown."""
        return {
            f"KVDR_{key.upper()}": "" if value is None else str(value)
            for key, value in self.to_dict().items()
        }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebhookHook:
    """POST the event to `url`; the signing secret from `secret_env` (a variable's name)
    or `secret_file` (a path), never inline. `retries` more attempts after the first,
    waiting `backoff_seconds`, doubled each time. `ca_file`: a CA bundle to trust."""

    url: str
    secret_env: str | None = None
    secret_file: str | None = None
    timeout_seconds: float = 5.0
    retries: int = 3
    backoff_seconds: float = 1.0
    name: str = ""
    ca_file: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host:
            raise ValueError("webhook url must be an https:// URL with a host")
        if parts.scheme == "http" and not _is_loopback(host):
            raise ValueError(
                f"webhook url must use https (plain http only to a loopback address, not {host})"
            )
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("webhook needs exactly one of secret_env or secret_file")
        if self.timeout_seconds <= 0 or self.backoff_seconds < 0:
            raise ValueError("webhook timeout must be > 0 and backoff >= 0")
        if self.retries < 0:
            raise ValueError("webhook retries must be >= 0")

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        # Never the query: it may carry a token.
        return self.name or f"webhook {parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class CommandHook:
    """Run `argv` (no shell) with the event on stdin and in `KVDR_*` variables, on top
    of kvdr's own environment; killed after `timeout_seconds`."""

    argv: tuple[str, ...]
    timeout_seconds: float = 30.0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(a, str) and a for a in self.argv):
            raise ValueError("command hook argv must be a non-empty list of non-empty strings")
        if self.timeout_seconds <= 0:
            raise ValueError("command hook timeout must be > 0")

    @property
    def label(self) -> str:
        return self.name or f"command {Path(self.argv[0]).name}"


Hook = WebhookHook | CommandHook


@dataclass(frozen=True)
class HookResult:
    hook: str
    kind: str  # webhook, command
    ok: bool
    attempts: int
    status: int | None = None
    exit_code: int | None = None
    error: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Kvdr-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """A receiver's check: the signature matches and the timestamp is recent."""
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_LENGTH else line[: _ERROR_LENGTH - 1] + "…"


def _secret(hook: WebhookHook, env: Mapping[str, str]) -> bytes:
    """The signing secret; `ValueError` naming where it should be (never its value)."""
    if hook.secret_env is not None:
        value = env.get(hook.secret_env, "")
        if not value:
            raise ValueError(f"secret_env {hook.secret_env} is not set or empty")
        return value.encode()
    assert hook.secret_file is not None
    try:
        data = Path(hook.secret_file).read_bytes().strip()
    except OSError as exc:
        raise ValueError(
            f"secret_file {hook.secret_file} cannot be read ({exc.strerror})"
        ) from None
    if not data:
        raise ValueError(f"secret_file {hook.secret_file} is empty")
    return data


async def _webhook(
    hook: WebhookHook,
    event: TransitionEvent,
    env: Mapping[str, str],
    sleep: Callable[[float], Awaitable[None]],
) -> HookResult:
    started = time.monotonic()

    def result(ok: bool, attempts: int, status: int | None = None, error: str = "") -> HookResult:
        return HookResult(
            hook.label,
            "webhook",
            ok,
            attempts,
            status=status,
            error=_one_line(error),
            seconds=round(time.monotonic() - started, 3),
        )

    try:
        secret = _secret(hook, env)
    except ValueError as exc:
        return result(False, 0, error=str(exc))
    body = event.to_json()
    delivery = uuid.uuid4().hex
    ssl_context: ssl.SSLContext | bool = True
    if hook.ca_file:
        ssl_context = ssl.create_default_context(cafile=hook.ca_file)
    status: int | None = None
    error = ""
    attempts = 0
    timeout = aiohttp.ClientTimeout(total=hook.timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(hook.retries + 1):
            if attempt:
                await sleep(hook.backoff_seconds * 2 ** (attempt - 1))
            attempts += 1
            # Signed anew each attempt: a late retry still carries a recent timestamp.
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                DELIVERY_HEADER: delivery,
                EVENT_HEADER: event.kind,
            }
            try:
                # No redirects: they would carry the signed event somewhere unconfigured.
                async with session.post(
                    hook.url, data=body, headers=headers, allow_redirects=False, ssl=ssl_context
                ) as response:
                    status = response.status
                    if 200 <= status < 300:
                        return result(True, attempts, status)
                    error = f"HTTP {status} {response.reason or ''}".strip()
                    if status < 500 and status != 429:
                        break  # the receiver refused the event: the same request would be too
            except TimeoutError:
                status, error = None, f"no answer within {hook.timeout_seconds:g} s"
            except aiohttp.ClientError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
    return result(False, attempts, status, error)


async def _command(hook: CommandHook, event: TransitionEvent) -> HookResult:
    started = time.monotonic()

    def result(ok: bool, exit_code: int | None, error: str = "") -> HookResult:
        return HookResult(
            hook.label,
            "command",
            ok,
            1,
            exit_code=exit_code,
            error=_one_line(error),
            seconds=round(time.monotonic() - started, 3),
        )

    try:
        process = await asyncio.create_subprocess_exec(
            *hook.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **event.environment()},
        )
    except OSError as exc:
        return result(False, None, f"cannot start {hook.argv[0]}: {exc.strerror or exc}")
    try:
        async with asyncio.timeout(hook.timeout_seconds):
            _, stderr = await process.communicate(event.to_json())
    except TimeoutError:
        process.kill()
        await process.wait()
        return result(False, process.returncode, f"killed after {hook.timeout_seconds:g} s")
    code = process.returncode
    if code == 0:
        return result(True, 0)
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return result(False, code, f"exit {code}" + (f": {lines[-1]}" if lines else ""))


async def run_hook(
    hook: Hook,
    event: TransitionEvent,
    *,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> HookResult:
    if isinstance(hook, WebhookHook):
        outcome = await _webhook(hook, event, os.environ if env is None else env, sleep)
    else:
        outcome = await _command(hook, event)
    event_fields = {"pair": event.pair, "kind": event.kind, "epoch": event.epoch}
    if outcome.ok:
        log.info("hook.ok", hook=outcome.hook, attempts=outcome.attempts, **event_fields)
    else:
        log.warning(
            "hook.failed",
            hook=outcome.hook,
            attempts=outcome.attempts,
            error=outcome.error,
            **event_fields,
        )
    return outcome


async def run_hooks(
    hooks: Sequence[Hook],
    event: TransitionEvent,
    *,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[HookResult]:
    """Run every hook at once (each bounded by its own timeout and retries); one result
    per hook in the order given. Never raises for a failing hook."""
    results = await asyncio.gather(
        *(run_hook(hook, event, env=env, sleep=sleep) for hook in hooks), return_exceptions=True
    )
    done: list[HookResult] = []
    for hook, outcome in zip(hooks, results, strict=True):
        if isinstance(outcome, HookResult):
            done.append(outcome)
        elif isinstance(outcome, Exception):
            kind = "webhook" if isinstance(hook, WebhookHook) else "command"
            error = _one_line(f"{type(outcome).__name__}: {outcome}")
            done.append(HookResult(hook.label, kind, False, 0, error=error))
        else:
            raise outcome  # CancelledError / KeyboardInterrupt: not the hook's failure
    return done
