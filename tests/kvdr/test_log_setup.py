"""Logging setup: JSON lines or console on stderr, stdlib routed through, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from kvdr.log_setup import REDACTED, configure_logging, redact_sensitive


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put stdlib logging and structlog back as they were after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("azure", "urllib3")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class TestRedaction:
    """Values of sensitive keys never reach the output."""

    def test_processor_redacts_sensitive_keys(self) -> None:
        """value, secret, password, tokens and the rest become <redacted>; others stay."""
        event = {
            "event": "mirrored",
            "pair": "demo",
            "value": "v1",
            "secret": "v2",
            "password": "v3",
            "client_secret": "v4",
            "connection_string": "v5",
            "token": "v6",
            "key_material": "v7",
            "pfx": "v8",
            "access_token": "v9",
            "Password": "v10",
        }
        out = redact_sensitive(None, "info", dict(event))
        assert out["pair"] == "demo"
        assert out["event"] == "mirrored"
        assert all(out[key] == REDACTED for key in event if key not in ("pair", "event"))

    def test_nested_structures_and_text_are_scrubbed(self) -> None:
        """Nested dicts and lists, and account keys or SAS signatures in text, are hidden."""
        out = redact_sensitive(
            None,
            "info",
            {
                "event": "blob failed: AccountKey=abc123==;EndpointSuffix=core",
                "request": {"headers": [{"token": "t0k"}], "url": "https://a/b?sv=1&sig=S1G"},
            },
        )
        assert out["event"] == f"blob failed: AccountKey={REDACTED};EndpointSuffix=core"
        assert out["request"]["headers"][0]["token"] == REDACTED
        assert out["request"]["url"] == f"https://a/b?sv=1&sig={REDACTED}"

    def test_json_output_never_contains_the_values(self) -> None:
        """Through the configured pipeline, a logged secret value is not in the output."""
        stream = io.StringIO()
        configure_logging("json", "info", stream=stream)
        structlog.get_logger("kvdr.test").info(
            "secret.set", item="secret/db", value="Hunter2-Value", tags={"password": "P4ss"}
        )
        text = stream.getvalue()
        assert "Hunter2-Value" not in text and "P4ss" not in text
        [line] = json_lines(stream)
        assert line["value"] == REDACTED
        assert line["item"] == "secret/db"

    def test_tracebacks_carry_no_local_variables(self) -> None:
        """An exception logged with its traceback does not show the frame's locals."""
        stream = io.StringIO()
        configure_logging("json", "info", stream=stream)
        log = structlog.get_logger("kvdr.test")

        def fail(material: str) -> None:
            raise RuntimeError("could not apply change")

        # Built at run time: the traceback quotes source lines, not values.
        material = "-".join(["Local", "Secret", "Material"])
        try:
            fail(material)
        except RuntimeError:
            log.exception("apply.failed")
        [line] = json_lines(stream)
        assert "RuntimeError: could not apply change" in line["exception"]
        assert "Local-Secret-Material" not in stream.getvalue()


class TestOutputFormat:
    """JSON lines for the daemon, console on a terminal, stdlib through the same path."""

    def test_json_lines_with_level_logger_and_timestamp(self) -> None:
        """Each event is one JSON object with event, level, logger and an ISO timestamp."""
        stream = io.StringIO()
        configure_logging("json", "info", stream=stream)
        log = structlog.get_logger("kvdr.replicator").bind(pair="demo")
        log.info("change.applied", item="secret/a", versions=2)
        log.debug("hidden.at.info")
        [line] = json_lines(stream)
        assert line["event"] == "change.applied"
        assert line["level"] == "info"
        assert line["logger"] == "kvdr.replicator"
        assert line["pair"] == "demo" and line["versions"] == 2
        assert line["timestamp"].endswith("Z")

    def test_auto_chooses_json_off_a_terminal_and_console_on_one(self) -> None:
        """'auto' writes JSON to a pipe or file and the console renderer to a terminal."""
        pipe = io.StringIO()
        configure_logging("auto", "info", stream=pipe)
        structlog.get_logger("kvdr.test").info("to.pipe")
        assert json_lines(pipe)[0]["event"] == "to.pipe"

        terminal = FakeTerminal()
        configure_logging("auto", "info", stream=terminal)
        structlog.get_logger("kvdr.test").info("to.terminal", value="Shown-Nowhere")
        text = terminal.getvalue()
        assert "to.terminal" in text and not text.lstrip().startswith("{")
        assert "Shown-Nowhere" not in text

    def test_console_format_can_be_forced(self) -> None:
        """log_format 'console' renders human-readable lines even off a terminal."""
        stream = io.StringIO()
        configure_logging("console", "info", stream=stream)
        structlog.get_logger("kvdr.test").warning("rpo.above.objective", pair="demo")
        text = stream.getvalue()
        assert "rpo.above.objective" in text and "pair=demo" in text
        assert not text.startswith("{")

    def test_stdlib_and_azure_logs_are_routed_and_quieted(self) -> None:
        """Azure SDK INFO is dropped, its WARNING arrives as JSON, redacted like ours."""
        stream = io.StringIO()
        configure_logging("json", "debug", stream=stream)
        azure = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
        azure.info("Request headers: Authorization: Bearer eyJ-token")
        azure.warning("retrying with Authorization: Bearer eyJ-token")
        [line] = json_lines(stream)
        assert line["level"] == "warning"
        assert line["logger"] == "azure.core.pipeline.policies.http_logging_policy"
        assert "eyJ-token" not in line["event"]

    def test_configuring_again_replaces_the_handler(self) -> None:
        """A second configure call does not duplicate every line."""
        first, second = io.StringIO(), io.StringIO()
        configure_logging("json", "info", stream=first)
        configure_logging("json", "info", stream=second)
        structlog.get_logger("kvdr.test").info("once")
        assert first.getvalue() == ""
        assert len(json_lines(second)) == 1

    def test_bad_arguments_are_refused(self) -> None:
        """An unknown format or level raises ValueError naming it."""
        with pytest.raises(ValueError, match="'xml'"):
            configure_logging("xml", "info", stream=io.StringIO())
        with pytest.raises(ValueError, match="'loud'"):
            configure_logging("json", "loud", stream=io.StringIO())
