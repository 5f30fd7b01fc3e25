"""Logging for every kvdr process: structlog, one line per event, on stderr.

JSON lines for the daemon (and whenever stderr is not a terminal), the console renderer
on a terminal; `log_format` forces either. Standard-library logging (the Azure SDK,
aiohttp) is routed through the same renderer, with the `azure` loggers at WARNING: their
INFO lines log every request and response header.

Secret values must never reach a log call in the first place. As defence in depth a
processor replaces the values of sensitive keys (`value`, `secret`, `password`,
`client_secret`, `connection_string`, `token`, `key_material`, `pfx`, and the same names
with a prefix such as `access_token`) with `<redacted>`, also inside nested dicts and
lists, and masks account keys and SAS signatures that appear inside any string.
Exception tracebacks are rendered without local variables, since locals hold values.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "SENSITIVE_KEYS", "configure_logging", "redact_sensitive"]

REDACTED = "<redacted>"
SENSITIVE_KEYS = frozenset(
    {
        "value",
        "secret",
        "password",
        "client_secret",
        "connection_string",
        "token",
        "key_material",
        "pfx",
    }
)
# `access_token`, `db_password`, `account_connection_string`: same meaning with a prefix.
_SENSITIVE_SUFFIXES = tuple(f"_{key}" for key in SENSITIVE_KEYS if key != "value")
# Inside free text (an SDK error message, a URL): storage account keys, SAS signatures,
# bearer tokens.
_SECRET_IN_TEXT = re.compile(
    r"(?i)(AccountKey=|SharedAccessKey=|SharedAccessSignature=|[?&]sig=|Bearer\s+)"
    r"[^;&\s\"']+"
)
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# Chatty third-party loggers held at WARNING whatever kvdr's own level is.
_QUIET_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "urllib3")
# Marks the handler this module installed, so configuring again replaces it.
_HANDLER_MARK = "_kvdr_log_handler"


def _is_sensitive(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in SENSITIVE_KEYS or lowered.endswith(_SENSITIVE_SUFFIXES)


def _scrub(value: Any, depth: int = 0) -> Any:
    # Depth bound: a self-referencing structure must not hang the logger.
    if depth > 8:
        return value
    if isinstance(value, str):
        return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_sensitive(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_scrub(item, depth + 1) for item in value)
    return value


def redact_sensitive(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hide the values of sensitive keys and secrets inside text."""
    for key in list(event_dict):
        if key == "event":
            event_dict[key] = _scrub(event_dict[key])
        elif _is_sensitive(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _chooses_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "json":
        return True
    if log_format == "console":
        return False
    if log_format != "auto":
        raise ValueError(f"log_format must be 'auto', 'json' or 'console', got {log_format!r}")
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    log_format: str = "auto", level: str = "info", *, stream: TextIO | None = None
) -> None:
    """Configure structlog and stdlib logging for this process (again replaces it).

    `log_format`: "auto" (console on a terminal, else JSON), "json" or "console".
    `level`: debug, info, warning, error or critical, for kvdr's own events.
    """
    numeric = LOG_LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    out = stream if stream is not None else sys.stderr
    as_json = _chooses_json(log_format, out)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        # Plain-text traceback in the `exception` field: never local variables.
        final: list[Processor] = [structlog.processors.format_exc_info, redact_sensitive]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_chooses_color(out),
            exception_formatter=structlog.dev.plain_traceback,
        )
        final = [redact_sensitive]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _chooses_color(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())
