"""The daemon's /status as the failover commands read it (kvdr/commands/_daemon_lag.py):
one reading serves every target's lag and the journal check; the journal wait polls
only while the reading says it is not durable."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from kvdr.commands._daemon_lag import (
    DaemonStatus,
    journal_durable,
    lag_of,
    read_daemon,
    wait_journal_durable,
)

WHERE = "http://127.0.0.1:1/status"


def status_doc(buffered: int = 0) -> dict[str, Any]:
    return {
        "pairs": [
            {
                "name": "app",
                "passes": 4,
                "passes_begun": 5,
                "targets": [
                    {
                        "region": "westus",
                        "lag_seconds": 1.5,
                        "pending": 2,
                        "pending_items": [
                            {"item": "secret/db", "since": "2026-12-03T12:00:00+00:00"},
                            {"item": "broken"},
                        ],
                    },
                    {"region": "centralus", "lag_seconds": None, "pending": None},
                ],
                "owner": "daemon-b",
            }
        ],
        "journal": [
            {"pair": "app", "buffered": buffered, "last_sequence": 9, "durable_sequence": 9}
        ],
    }


class Daemon:
    """A /status endpoint that answers the documents it is given, the last one again
    once they run out, and counts the requests."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.requests = 0
        daemon = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                doc = daemon.docs[min(daemon.requests, len(daemon.docs) - 1)]
                daemon.requests += 1
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Daemon] = []

    def start(*docs: dict[str, Any]) -> Daemon:
        daemon = Daemon(list(docs))
        threading.Thread(target=daemon.server.serve_forever, daemon=True).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.server.shutdown()
        daemon.server.server_close()


CONFIG: Any = SimpleNamespace(daemon=SimpleNamespace(status_token=None))


class TestOneReading:
    def test_lag_of_each_target_from_one_document(self) -> None:
        """The lag, passes and named pending items of a target; why it is unknown for a
        target another daemon runs, a region that is no target, an unknown pair."""
        reading = DaemonStatus(WHERE, status_doc())
        lag, why = lag_of(reading, "app", "westus")
        assert lag is not None and why == ""
        assert (lag.lag_seconds, lag.pending, lag.passes, lag.passes_begun) == (1.5, 2, 4, 5)
        assert [item for item, _ in lag.pending_items] == ["secret/db"]
        assert lag.source == f"daemon {WHERE}"
        assert lag_of(reading, "app", "centralus") == (
            None,
            f"the daemon at {WHERE} does not run the pair (daemon-b does)",
        )
        assert lag_of(reading, "app", "mars")[1] == (
            f"mars is not a target of pair app at the daemon {WHERE}"
        )
        assert lag_of(reading, "other", "westus")[1] == (
            f"the daemon at {WHERE} does not know pair other"
        )
        assert lag_of(DaemonStatus(WHERE, None, "refused"), "app", "westus") == (None, "refused")

    def test_journal_durable(self) -> None:
        """Durable when nothing is buffered and every sequence is durable, or when there
        is no journal of the pair, or no reading."""
        assert journal_durable(DaemonStatus(WHERE, status_doc()), "app")
        assert not journal_durable(DaemonStatus(WHERE, status_doc(buffered=3)), "app")
        assert journal_durable(DaemonStatus(WHERE, status_doc(buffered=3)), "other")
        assert journal_durable(DaemonStatus(WHERE, None, "no daemon"), "app")

    def test_read_daemon_without_one(self, serve: Any) -> None:
        """No daemon at the address: no document, and why."""
        daemon = serve(status_doc())
        daemon.server.shutdown()
        daemon.server.server_close()
        reading = read_daemon(CONFIG, daemon.url)
        assert reading.doc is None and "no daemon answers at" in reading.why


class TestJournalWait:
    async def test_a_durable_reading_is_not_read_again(self, serve: Any) -> None:
        """Given a reading in which the journal is durable, the wait asks nothing."""
        daemon = serve(status_doc())
        first = read_daemon(CONFIG, daemon.url)
        await wait_journal_durable(CONFIG, "app", daemon.url, first)
        assert daemon.requests == 1

    async def test_polls_until_durable(self, serve: Any) -> None:
        """A reading with buffered changes: the daemon is asked again until they are
        durable; without a reading the wait takes one first."""
        daemon = serve(status_doc(buffered=2), status_doc(buffered=1), status_doc())
        first = read_daemon(CONFIG, daemon.url)
        await wait_journal_durable(CONFIG, "app", daemon.url, first)
        assert daemon.requests == 3
        await wait_journal_durable(CONFIG, "app", daemon.url)
        assert daemon.requests == 4
