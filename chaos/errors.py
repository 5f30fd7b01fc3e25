"""Errors of the fault proxy, of the fault client and of a drill's steps.

    ChaosError
    ├── ApiError            the proxy's HTTP API answers no: carries the HTTP status and
    │                       the message that goes into Toxiproxy's {"error", "status"} body
    ├── ListenError         the fault proxy's own HTTP API could not listen (port in use)
    ├── StepFailed          a drill's step could not do what it says (chaos.drill)
    └── FaultError          a fault could not be driven through a Toxiproxy API
        ├── FaultApiUnreachable   request never answered (server down, refused)
        ├── LinkNotFound          the named link (proxy) or toxic does not exist
        ├── LinkExists            a link (proxy) or toxic with that name already exists
        └── InvalidFault          the server rejected the toxic or link as malformed

The `ApiError` constructors below carry Toxiproxy's exact messages, so clients that
match on them (its Go client prints "HTTP 404: proxy not found") see the same text.
"""

from __future__ import annotations


class ChaosError(Exception):
    """Base of every error raised by the `chaos` package."""


class ApiError(ChaosError):
    """An answer of the Toxiproxy-compatible API that is not a success."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}

    @classmethod
    def bad_request_body(cls, detail: str) -> ApiError:
        return cls(f"bad request body: {detail}", 400)

    @classmethod
    def missing_field(cls, field: str) -> ApiError:
        return cls(f"missing required field: {field}", 400)

    @classmethod
    def proxy_not_found(cls) -> ApiError:
        return cls("proxy not found", 404)

    @classmethod
    def proxy_exists(cls) -> ApiError:
        return cls("proxy already exists", 409)

    @classmethod
    def invalid_stream(cls) -> ApiError:
        return cls("stream was invalid, can be either upstream or downstream", 400)

    @classmethod
    def invalid_toxic_type(cls) -> ApiError:
        return cls("invalid toxic type", 400)

    @classmethod
    def toxic_exists(cls) -> ApiError:
        return cls("toxic already exists", 409)

    @classmethod
    def toxic_not_found(cls) -> ApiError:
        return cls("toxic not found", 404)

    @classmethod
    def listen_failed(cls, detail: str) -> ApiError:
        # Toxiproxy passes the listener's own error through as a 500 (its
        # TestCreateProxyPortConflict expects "HTTP 500: listen tcp ...: bind: ...").
        return cls(detail, 500)


class ListenError(ChaosError):
    """The fault proxy's HTTP API could not listen on its address."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class StepFailed(ChaosError):
    """A step of the method could not do what it says; the message says why."""


class FaultError(ChaosError):
    """A fault could not be driven through the Toxiproxy API."""


class FaultApiUnreachable(FaultError):
    """The Toxiproxy API did not answer (not running, refused, connection dropped)."""


class LinkNotFound(FaultError):
    """The named link (a Toxiproxy proxy) or one of its toxics does not exist."""


class LinkExists(FaultError):
    """A link (a Toxiproxy proxy) or toxic with that name already exists."""


class InvalidFault(FaultError):
    """The server rejected the toxic or link definition as malformed."""
