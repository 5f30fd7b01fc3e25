"""Key-encryption keys (backups/keks.py) and the vault seam's wrap_key / unwrap_key,
against real emulators."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from backups.envelope import Binding, open_sealed, seal
from backups.errors import KekUnavailable, NoUsableKek
from backups.keks import LocalFileKek, RecoveryKek, VaultKek, Wrap
from tests.backups.conftest import (
    create_rsa_key,
    local_kek,
    open_adapter,
    recovery_private_pem,
    recovery_public_pem,
    ring,
    unique,
)
from tests.fixtures.emulator import EmulatorFactory, EmulatorProcess
from vault import BadRequest, ItemNotFound

BIND = Binding("app", "g1", "segment", 1, 1, "backups/app/g1/segments/1-1")


class TestVaultSeamWrap:
    async def test_wrap_unwrap_round_trip(self, emulator: EmulatorProcess) -> None:
        """wrap_key names the key version; unwrap_key with it returns the data key."""
        name = unique("kek")
        version = await create_rsa_key(emulator, name)
        async with open_adapter(emulator) as vault:
            data_key = os.urandom(32)
            wrapped = await vault.wrap_key(name, data_key)
            assert wrapped.key_id == f"{emulator.url}/keys/{name}/{version}"
            assert wrapped.algorithm == "RSA-OAEP-256"
            assert wrapped.encrypted_key != data_key and len(wrapped.encrypted_key) == 256
            assert await vault.unwrap_key(name, version, wrapped.encrypted_key) == data_key
            assert "encrypted_key" not in repr(wrapped)

    async def test_old_version_still_unwraps_after_rotation(
        self, emulator: EmulatorProcess
    ) -> None:
        """After a new key version, new wraps use it (once the cached public key expires,
        or from a new adapter) and old wraps still open."""
        name = unique("kek")
        first = await create_rsa_key(emulator, name)
        async with open_adapter(emulator) as vault:
            old = await vault.wrap_key(name, b"k" * 32)
            second = await create_rsa_key(emulator, name)
            cached = await vault.wrap_key(name, b"c" * 32)
            assert old.key_id.endswith(first) and cached.key_id.endswith(first)
            pinned = await vault.wrap_key(name, b"p" * 32, version=second)
            assert pinned.key_id.endswith(second)
        async with open_adapter(emulator) as vault:
            new = await vault.wrap_key(name, b"n" * 32)
            assert new.key_id.endswith(second)
            assert await vault.unwrap_key(name, first, old.encrypted_key) == b"k" * 32
            assert await vault.unwrap_key(name, second, new.encrypted_key) == b"n" * 32

    async def test_missing_key_and_bad_input(self, emulator: EmulatorProcess) -> None:
        """A missing key is ItemNotFound; a bad name or empty version is refused before I/O."""
        async with open_adapter(emulator) as vault:
            with pytest.raises(ItemNotFound):
                await vault.wrap_key(unique("absent"), b"k" * 32)
            with pytest.raises(BadRequest):
                await vault.wrap_key("bad name!", b"k" * 32)
            with pytest.raises(BadRequest):
                await vault.unwrap_key("kek", "", b"x")


class TestVaultKek:
    async def test_each_region_alone_opens(self, make_emulator: EmulatorFactory) -> None:
        """An object wrapped by two regions' vault keys opens with either region alone."""
        east, west = make_emulator(region="eastus"), make_emulator(region="westus")
        await create_rsa_key(east, "kvdr-backup")
        await create_rsa_key(west, "kvdr-backup")
        async with open_adapter(east) as ev, open_adapter(west) as wv:
            both = ring(VaultKek(ev, "kvdr-backup"), VaultKek(wv, "kvdr-backup"))
            sealed, _ = await seal([b"state"], BIND, both)
            for one in (VaultKek(ev, "kvdr-backup"), VaultKek(wv, "kvdr-backup")):
                opened = await open_sealed(sealed, BIND, ring(one))
                assert opened.plaintext() == b"state"

    async def test_region_down_wraps_with_the_rest(self, make_emulator: EmulatorFactory) -> None:
        """With one region's vault down, objects are wrapped by the others (logged)."""
        east, west = make_emulator(region="eastus"), make_emulator(region="westus")
        await create_rsa_key(east, "kvdr-backup")
        await create_rsa_key(west, "kvdr-backup")
        async with (
            open_adapter(east, max_attempts=1) as ev,
            open_adapter(west, max_attempts=1, request_timeout_seconds=2) as wv,
        ):
            keks = ring(VaultKek(ev, "kvdr-backup"), VaultKek(wv, "kvdr-backup"))
            west.stop()
            with capture_logs() as logs:
                sealed, _ = await seal([b"state"], BIND, keks)
            assert any(e["event"] == "backups.kek_wrap_failed" for e in logs)
            opened = await open_sealed(sealed, BIND, ring(VaultKek(ev, "kvdr-backup")))
            assert opened.plaintext() == b"state"
            with pytest.raises(KekUnavailable):
                await seal([b"x"], BIND, ring(VaultKek(wv, "kvdr-backup")))

    async def test_other_vault_key_does_not_recognise(self, emulator: EmulatorProcess) -> None:
        """A vault KEK only tries wraps made by its own vault and key name."""
        async with open_adapter(emulator) as vault:
            kek = VaultKek(vault, "kvdr-backup")
            mine = Wrap(f"vault:{emulator.url}/keys/kvdr-backup/abc", "RSA-OAEP-256", b"x")
            other_name = Wrap(f"vault:{emulator.url}/keys/other/abc", "RSA-OAEP-256", b"x")
            other_host = Wrap("vault:https://elsewhere/keys/kvdr-backup/abc", "RSA-OAEP-256", b"x")
            assert kek.recognises(mine)
            assert not kek.recognises(other_name) and not kek.recognises(other_host)


class TestRecoveryKek:
    def test_public_and_private_files(self, tmp_path: Path) -> None:
        """A public PEM wraps only; the private PEM of the same pair has the same id."""
        public = tmp_path / "recovery.pub.pem"
        private = tmp_path / "recovery.pem"
        public.write_bytes(recovery_public_pem())
        private.write_bytes(recovery_private_pem())
        pub, priv = RecoveryKek.from_file(public), RecoveryKek.from_file(private)
        assert pub.kek_id == priv.kek_id and pub.kek_id.startswith("recovery:")
        assert not pub.can_unwrap and priv.can_unwrap
        assert "PRIVATE" not in repr(priv) and "BEGIN" not in repr(priv)

    def test_bad_files_are_named_without_content(self, tmp_path: Path) -> None:
        """A file that is not an RSA PEM key is refused, naming the file, never its content."""
        bad = tmp_path / "bad.pem"
        bad.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXN0dWZm\n-----END PRIVATE KEY-----\n")
        with pytest.raises(ValueError) as caught:
            RecoveryKek.from_file(bad)
        assert str(bad) in str(caught.value) and "c2VjcmV0" not in str(caught.value)
        with pytest.raises(ValueError, match="cannot read"):
            RecoveryKek.from_file(tmp_path / "absent.pem")

    def test_small_rsa_refused(self) -> None:
        """RSA keys under 2048 bits are refused."""
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        with pytest.raises(ValueError, match="at least RSA-2048"):
            RecoveryKek(small.public_key())


class TestLocalFileKek:
    def test_create_then_load(self, tmp_path: Path) -> None:
        """A created key file (mode 0600) loads to the same KEK; it is never overwritten."""
        path = tmp_path / "keys" / "backup.key"
        created = LocalFileKek.create_key_file(path)
        assert path.stat().st_mode & 0o777 == 0o600
        assert LocalFileKek.from_file(path).kek_id == created.kek_id
        with pytest.raises(ValueError, match="exists already"):
            LocalFileKek.create_key_file(path)

    def test_not_a_key_file(self, tmp_path: Path) -> None:
        """Files that are not kvdr local keys are refused by name."""
        path = tmp_path / "k"
        path.write_text("hello")
        with pytest.raises(ValueError, match="not a kvdr local key"):
            LocalFileKek.from_file(path)

    async def test_wrong_key_cannot_unwrap(self) -> None:
        """Another local key with a forged id does not unwrap (AES key wrap checks)."""
        a, b = local_kek(), local_kek()
        wrap = await a.wrap(os.urandom(32))
        forged = Wrap(b.kek_id, wrap.algorithm, wrap.key)
        with pytest.raises(NoUsableKek):
            await ring(b).unwrap([forged], "blob-x")
