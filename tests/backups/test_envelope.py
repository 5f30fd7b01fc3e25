"""Envelope encryption (backups/envelope.py): round trips, tamper detection, format."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backups.envelope import FORMAT, MAGIC, Binding, open_sealed, read_header, seal
from backups.errors import NoUsableKek, TamperedObject, UnknownFormat
from backups.keks import KekRing
from tests.backups.conftest import local_kek, recovery_private, recovery_public, ring

KEK = local_kek()
RING = ring(KEK)


def binding(**overrides: object) -> Binding:
    base: dict[str, object] = {
        "pair": "app",
        "generation": "20250101T000000Z-0000abcd",
        "kind": "segment",
        "first": 1,
        "last": 10,
        "blob": "backups/app/20250101T000000Z-0000abcd/segments/1-10",
    }
    base.update(overrides)
    return Binding(**base)  # type: ignore[arg-type]


def roundtrip(plain: bytes, bind: Binding, ring: KekRing = RING) -> bytes:
    async def go() -> bytes:
        sealed, _ = await seal([plain], bind, ring)
        opened = await open_sealed(sealed, bind, ring)
        return opened.plaintext()

    return asyncio.run(go())


def sealed_bytes(plain: bytes, bind: Binding, ring: KekRing = RING) -> bytes:
    return asyncio.run(seal([plain], bind, ring))[0]


def open_bytes(data: bytes, bind: Binding, ring: KekRing = RING) -> bytes:
    async def go() -> bytes:
        return (await open_sealed(data, bind, ring)).plaintext()

    return asyncio.run(go())


class TestRoundTrip:
    @given(st.binary(max_size=4096), st.integers(0, 10**12), st.integers(0, 10**6))
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_any_plaintext_comes_back(self, plain: bytes, first: int, extra: int) -> None:
        """Whatever goes in comes out, for any sequence range."""
        assert roundtrip(plain, binding(first=first, last=first + extra)) == plain

    def test_chunks_are_one_plaintext(self) -> None:
        """Sealing in chunks equals sealing the concatenation; lines split on newlines."""
        bind = binding()

        async def go() -> list[bytes]:
            sealed, digest = await seal([b"one\ntw", b"o\nthree"], bind, RING)
            opened = await open_sealed(sealed, bind, RING)
            assert opened.digest == digest
            return list(opened.lines())

        assert asyncio.run(go()) == [b"one", b"two", b"three"]

    def test_fresh_data_key_and_nonce_per_object(self) -> None:
        """Sealing the same plaintext twice gives different bytes (new key and nonce)."""
        assert sealed_bytes(b"same", binding()) != sealed_bytes(b"same", binding())

    def test_compressed_before_encryption(self) -> None:
        """Repetitive JSON shrinks: compression happens before encryption."""
        plain = b'{"op":"new_version","kind":"secret"}\n' * 2000
        assert len(sealed_bytes(plain, binding())) < len(plain) // 10


class TestTamperDetection:
    @given(st.data())
    @settings(max_examples=80, deadline=None)
    def test_any_flipped_byte_is_detected(self, data: st.DataObject) -> None:
        """Flipping any one byte anywhere (prefix, header or ciphertext) fails to open."""
        bind = binding()
        sealed = bytearray(SEALED)
        index = data.draw(st.integers(0, len(sealed) - 1))
        sealed[index] ^= data.draw(st.integers(1, 255))
        with pytest.raises((TamperedObject, UnknownFormat, NoUsableKek)):
            open_bytes(bytes(sealed), bind)

    @given(st.integers(0, 400))
    @settings(max_examples=40, deadline=None)
    def test_truncation_is_detected(self, cut: int) -> None:
        """A truncated object never opens."""
        with pytest.raises((TamperedObject, UnknownFormat)):
            open_bytes(SEALED[: len(SEALED) - 1 - cut], binding())

    @pytest.mark.parametrize(
        "field,value",
        [
            ("pair", "other"),
            ("generation", "20250101T000000Z-ffffffff"),
            ("kind", "snapshot"),
            ("first", 2),
            ("last", 11),
            ("blob", "backups/app/20250101T000000Z-0000abcd/segments/11-20"),
        ],
    )
    def test_read_under_another_binding_fails(self, field: str, value: object) -> None:
        """An object moved to another name, pair, generation or range does not open."""
        with pytest.raises(TamperedObject) as caught:
            open_bytes(SEALED, binding(**{field: value}))
        assert "another place" in str(caught.value)

    def test_header_binding_rewritten_fails_authentication(self) -> None:
        """Rewriting the clear header to match a new name breaks the GCM tag."""
        target = binding(blob="backups/app/x/segments/1-10")
        header = read_header(SEALED, "x")
        doc = json.loads(header.raw)
        doc["binding"]["blob"] = target.blob
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        forged = MAGIC + bytes([FORMAT]) + len(raw).to_bytes(4, "big") + raw
        forged += SEALED[len(MAGIC) + 5 + len(header.raw) :]
        with pytest.raises(TamperedObject) as caught:
            open_bytes(forged, target)
        assert "authentication failed" in str(caught.value)

    def test_errors_name_the_blob(self) -> None:
        """Every failure names the blob it is about."""
        with pytest.raises(TamperedObject) as caught:
            open_bytes(SEALED[:-3], binding())
        assert binding().blob in str(caught.value)


class TestFormat:
    def test_not_ours(self) -> None:
        """Bytes without the prefix are reported as not a kvdr backup object."""
        with pytest.raises(UnknownFormat) as caught:
            open_bytes(b"PK\x03\x04 some zip", binding())
        assert "not a kvdr backup object" in str(caught.value)

    def test_newer_format_version(self) -> None:
        """A newer format version is refused with a hint to upgrade."""
        newer = MAGIC + bytes([FORMAT + 1]) + SEALED[len(MAGIC) + 1 :]
        with pytest.raises(UnknownFormat) as caught:
            open_bytes(newer, binding())
        assert "upgrade" in str(caught.value)

    def test_header_reveals_no_plaintext(self) -> None:
        """Nothing of the plaintext appears in the object's bytes."""
        plain = b'{"name":"db-password-prod","value":"hunter2-very-secret"}'
        sealed = sealed_bytes(plain, binding())
        assert b"db-password-prod" not in sealed and b"hunter2" not in sealed


class TestEveryKekOpens:
    def test_each_kek_alone_opens(self) -> None:
        """An object wrapped for three KEKs opens with any one of them alone."""
        second = local_kek()
        keks = ring(KEK, second, recovery_public())
        sealed = sealed_bytes(b"payload", binding(), keks)
        assert open_bytes(sealed, binding(), ring(KEK)) == b"payload"
        assert open_bytes(sealed, binding(), ring(second)) == b"payload"
        assert open_bytes(sealed, binding(), ring(recovery_private())) == b"payload"

    def test_public_recovery_half_cannot_open(self) -> None:
        """The recovery key's public half wraps but cannot unwrap."""
        sealed = sealed_bytes(b"payload", binding(), ring(recovery_public()))
        with pytest.raises(NoUsableKek) as caught:
            open_bytes(sealed, binding(), ring(recovery_public()))
        assert "private half is offline" in str(caught.value)

    def test_wrong_kek_is_named(self) -> None:
        """A ring without any of the wrapping KEKs says which KEKs the object needs."""
        sealed = sealed_bytes(b"payload", binding(), ring(KEK))
        with pytest.raises(NoUsableKek) as caught:
            open_bytes(sealed, binding(), ring(local_kek()))
        assert KEK.kek_id in str(caught.value)
        assert binding().blob in str(caught.value)


SEALED = sealed_bytes(b'{"seq":1}\n{"seq":2}\n' * 20, binding())
