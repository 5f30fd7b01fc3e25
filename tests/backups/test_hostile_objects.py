"""Hostile backup objects: whatever bytes sit in the journal's place, reading them raises
only the backups part's own errors, each naming the blob (hypothesis). The envelope's
authentication is tested in test_envelope.py; this is what comes before and after it:
the clear header, and the record lines a decrypted object holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backups.envelope import FORMAT, MAGIC, UNSIGNED_FORMAT, read_header
from backups.errors import ObjectUnreadable
from backups.records import RecordError, change_from_line, item_from_line
from tests.fixtures.hostile import json_values

BLOB = "backups/app/20250101T000000Z-0000abcd/segments/1-10"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADER_KEYS = ["format", "cipher", "compression", "padding", "nonce", "binding", "wraps"]
RECORD_KEYS = ["s", "a", "o", "k", "n", "p", "x", "d", "t", "v"]


def framed(header: bytes, version: int = FORMAT) -> bytes:
    return MAGIC + bytes([version]) + len(header).to_bytes(4, "big") + header + b"\0" * 32


def header_docs() -> st.SearchStrategy[dict[str, Any]]:
    """Headers with kvdr's keys (so the fuzz reaches each key's check), any values."""
    plausible = {
        "cipher": st.just("AES-256-GCM") | json_values(),
        "compression": st.just("zlib") | json_values(),
        "padding": st.just("padme") | json_values(),
        "nonce": st.just("AAAAAAAAAAAAAAAA") | json_values(),
    }
    return st.fixed_dictionaries(
        {},
        optional={key: plausible.get(key, json_values()) for key in HEADER_KEYS}
        | {"signer": json_values(), "sig_alg": json_values()},
    )


class TestHeaders:
    @FUZZ
    @given(st.binary(max_size=300))
    def test_any_bytes(self, data: bytes) -> None:
        with pytest.raises(ObjectUnreadable) as refused:
            read_header(data, BLOB)
        assert BLOB in str(refused.value)

    @FUZZ
    @given(header_docs(), st.sampled_from([FORMAT, UNSIGNED_FORMAT]))
    def test_any_header_document(self, doc: dict[str, Any], version: int) -> None:
        try:
            header = read_header(framed(json.dumps(doc).encode(), version), BLOB)
        except ObjectUnreadable as exc:
            assert BLOB in str(exc)
        else:
            # What it accepts is typed as the opener expects.
            assert isinstance(header.binding, dict) and len(header.nonce) == 12

    @pytest.mark.parametrize("depth", [1_000, 30_000])
    def test_deeply_nested_header_is_refused_not_a_crash(self, depth: int) -> None:
        """A header of nested arrays within the 64 KB limit (JSON's parser recurses)."""
        with pytest.raises(ObjectUnreadable):
            read_header(framed(b"[" * depth + b"]" * depth), BLOB)

    def test_header_length_beyond_the_object(self) -> None:
        data = MAGIC + bytes([FORMAT]) + (10**6).to_bytes(4, "big") + b"{}"
        with pytest.raises(ObjectUnreadable, match="header length"):
            read_header(data, BLOB)


class TestRecordLines:
    @FUZZ
    @given(
        st.fixed_dictionaries({}, optional={key: json_values() for key in RECORD_KEYS})
        | json_values()
    )
    def test_any_line(self, doc: Any) -> None:
        line = json.dumps(doc).encode()
        for read in (lambda: change_from_line("app", line), lambda: item_from_line(line)):
            try:
                read()
            except RecordError as exc:
                # Names the field, never the value it holds.
                assert str(exc)

    @FUZZ
    @given(st.binary(max_size=200))
    def test_any_bytes(self, line: bytes) -> None:
        with pytest.raises(RecordError):
            change_from_line("app", line + b"\xff")

    def test_deeply_nested_line_is_a_record_error(self) -> None:
        line = b'{"s": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        with pytest.raises(RecordError):
            change_from_line("app", line)
