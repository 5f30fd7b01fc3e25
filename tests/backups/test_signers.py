"""Signing keys (backups/signers.py) and `[[backups.signers]]`: local key files, vault
keys signing through the vault seam on a real emulator (ES256 and PS256), checking with
the pinned public half alone, and every configuration mistake named with its key."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from backups.catalog import load_catalog
from backups.errors import BadSignature, SignerUnavailable, UnpinnedSigner, Unsigned
from backups.keks import KekRing
from backups.signer_files import Ed25519FileSigner, HmacFileSigner
from backups.signers import (
    PinnedKey,
    SignatureBlock,
    SignerRing,
    VaultSigner,
)
from backups.verify import verify_pair
from kvdr.config import ConfigError, parse_config
from storage import AzureBlobStore
from tests.backups.conftest import (
    FIXED_KEK,
    ec_public_pem,
    make_journal,
    open_adapter,
    recovery_private_pem,
    secret_change,
)
from tests.backups.test_commands import MINIMAL
from tests.fixtures.emulator import EmulatorProcess, aio_key_client

DIGEST = hashlib.sha256(b"what is signed").digest()


def pem(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def create_signing_key(emu: EmulatorProcess, name: str, kty: str) -> PinnedKey:
    """An EC P-256 or RSA-2048 key in the emulator; its public half, pinned."""
    async with aio_key_client(emu) as keys:
        if kty == "EC":
            made = await keys.create_ec_key(name, curve="P-256")
            assert made.key.x is not None and made.key.y is not None
            public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey = ec.EllipticCurvePublicNumbers(
                int.from_bytes(made.key.x, "big"), int.from_bytes(made.key.y, "big"), ec.SECP256R1()
            ).public_key()
        else:
            made = await keys.create_rsa_key(name, size=2048)
            assert made.key.n is not None and made.key.e is not None
            public = rsa.RSAPublicNumbers(
                int.from_bytes(made.key.e, "big"), int.from_bytes(made.key.n, "big")
            ).public_key()
    return PinnedKey.from_pem(pem(public))


class TestKeyFiles:
    @pytest.mark.parametrize("kind", [Ed25519FileSigner, HmacFileSigner])
    async def test_created_0600_loaded_back_never_overwritten(
        self, tmp_path: Path, kind: type[Ed25519FileSigner] | type[HmacFileSigner]
    ) -> None:
        """A new key file is mode 0600, reads back as the same signer, and a second
        create refuses to overwrite it."""
        file = tmp_path / "keys" / "signing.key"
        made = kind.create_key_file(file)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        loaded = kind.from_file(file)
        assert loaded.signer_id == made.signer_id
        assert loaded.check(DIGEST, await made.sign(DIGEST))
        with pytest.raises(ValueError, match="exists already"):
            kind.create_key_file(file)

    def test_damaged_file_is_named_without_its_content(self, tmp_path: Path) -> None:
        """A file that is not a kvdr signing key is refused naming the file only."""
        file = tmp_path / "signing.key"
        file.write_text("kvdr-signing-ed25519-v1:not-base64-s3cr3t\n")
        with pytest.raises(ValueError) as caught:
            Ed25519FileSigner.from_file(file)
        assert str(file) in str(caught.value) and "s3cr3t" not in str(caught.value)

    def test_pinned_key_refuses_private_and_weak_keys(self) -> None:
        """Only public halves are pinned; RSA below 2048 bits and curves other than P-256
        are refused."""
        with pytest.raises(ValueError, match="private key"):
            PinnedKey.from_pem(recovery_private_pem())
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        with pytest.raises(ValueError, match="RSA-1024"):
            PinnedKey.from_pem(pem(weak))
        p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
        with pytest.raises(ValueError, match="P-256"):
            PinnedKey.from_pem(pem(p384))


class TestRing:
    async def test_unsigned_unpinned_and_mismatching_are_refused(self, tmp_path: Path) -> None:
        """The three refusals, each naming the blob; unsigned passes only when allowed."""
        signer = Ed25519FileSigner.create_key_file(tmp_path / "a.key")
        other = HmacFileSigner.create_key_file(tmp_path / "b.key")
        ring = SignerRing([signer])
        good = SignatureBlock(signer.signer_id, signer.algorithm, await signer.sign(DIGEST))
        assert ring.check(good, DIGEST, "blob-a")
        with pytest.raises(Unsigned, match="blob-a"):
            ring.check(None, DIGEST, "blob-a")
        assert ring.allowing_unsigned().check(None, DIGEST, "blob-a") is False
        foreign = SignatureBlock(other.signer_id, other.algorithm, await other.sign(DIGEST))
        with pytest.raises(UnpinnedSigner, match="not pinned"):
            ring.check(foreign, DIGEST, "blob-a")
        altered = SignatureBlock(signer.signer_id, signer.algorithm, bytes(64))
        with pytest.raises(BadSignature, match="does not match"):
            ring.check(altered, DIGEST, "blob-a")

    async def test_recovery_kit_holds_public_halves_and_hmac_ids(self, tmp_path: Path) -> None:
        """The kit lists every pinned signer; PEMs for public keys, ids only for HMAC."""
        ed = Ed25519FileSigner.create_key_file(tmp_path / "a.key")
        mac = HmacFileSigner.create_key_file(tmp_path / "b.key")
        kit = SignerRing([ed, mac]).kit()
        assert [entry["id"] for entry in kit] == [ed.signer_id, mac.signer_id]
        assert PinnedKey.from_pem(kit[0]["public_key"].encode()).signer_id == ed.signer_id
        assert "public_key" not in kit[1]


class TestVaultSigners:
    @pytest.mark.parametrize("kty,algorithm", [("EC", "ES256"), ("RSA", "PS256")])
    async def test_vault_signs_pinned_half_checks(
        self, emulator: EmulatorProcess, kty: str, algorithm: str
    ) -> None:
        """The vault signs through the seam; the pinned public half checks the signature
        locally, and so does the vault's own verify."""
        name = f"kvdr-signing-{kty.lower()}"
        pinned = await create_signing_key(emulator, name, kty)
        assert pinned.algorithm == algorithm
        async with open_adapter(emulator) as vault:
            signer = VaultSigner(vault, name, pinned)
            signature = await signer.sign(DIGEST)
            assert pinned.check(DIGEST, signature)
            assert not pinned.check(hashlib.sha256(b"other").digest(), signature)
            made = await vault.sign(name, algorithm, DIGEST)
            version = made.key_id.rsplit("/", 1)[-1]
            assert await vault.verify(name, version, algorithm, DIGEST, made.value)
            assert not await vault.verify(name, version, algorithm, DIGEST, bytes(len(made.value)))

    async def test_rotated_key_no_longer_matching_its_pin_does_not_sign(
        self, emulator: EmulatorProcess
    ) -> None:
        """A new key version is not what was pinned: signing says so instead of writing
        objects no reader would trust."""
        pinned = await create_signing_key(emulator, "kvdr-signing-rotated", "EC")
        await create_signing_key(emulator, "kvdr-signing-rotated", "EC")
        async with open_adapter(emulator) as vault:
            with pytest.raises(SignerUnavailable, match="does not match the pinned public key"):
                await VaultSigner(vault, "kvdr-signing-rotated", pinned).sign(DIGEST)

    async def test_pinned_half_alone_verifies_what_the_vault_signed(
        self, emulator: EmulatorProcess, blob_container: AzureBlobStore
    ) -> None:
        """Backups signed by a vault key check out with the pinned public half and no
        vault at all (break-glass)."""
        pinned = await create_signing_key(emulator, "kvdr-signing-journal", "EC")
        async with open_adapter(emulator) as vault:
            keks = KekRing(
                [FIXED_KEK], SignerRing([VaultSigner(vault, "kvdr-signing-journal", pinned)])
            )
            journal = make_journal(blob_container, keks=keks)
            await journal.record([secret_change("db-password", "v1", "value-1")])
            await journal.close()
        offline = KekRing([FIXED_KEK], SignerRing([], [pinned]))
        report = await verify_pair(blob_container, offline, "app")
        assert report.ok and report.signed == 1 and report.head_signed is True
        listed = (await load_catalog(blob_container, "app")).summary()["generations"]
        assert listed[0]["signers"] == {pinned.signer_id: 1}


class TestConfiguration:
    @pytest.mark.parametrize(
        "signer,key,message",
        [
            ("", "backups.signers", "at least one signer"),
            (
                '[[backups.signers]]\nkind = "vault"\nregion = "mars"\nkey = "k"\n'
                'public_key = "{ec}"\n',
                "backups.signers[0].region",
                "unknown region 'mars'",
            ),
            (
                '[[backups.signers]]\nkind = "vault"\nregion = "eastus"\nkey = "k"\n',
                "backups.signers[0].public_key",
                "public half",
            ),
            (
                '[[backups.signers]]\nkind = "public"\npublic_key = "{private}"\n',
                "backups.signers[0].public_key",
                "pin only the public half",
            ),
            (
                '[[backups.signers]]\nkind = "file"\npath = "{tmp}/s.key"\nalgorithm = "RSA"\n',
                "backups.signers[0].algorithm",
                "'RSA' is not one of",
            ),
            (
                '[[backups.signers]]\nkind = "file"\npath = "{tmp}/hmac.key"\n'
                'algorithm = "HMAC-SHA256"\nkey_id = "hmac:0000000000000000"\n',
                "backups.signers[0].key_id",
                "is not the pinned key",
            ),
            (
                '[[backups.signers]]\nkind = "file"\npath = "{tmp}/ed.key"\npublic_key = "{ec}"\n',
                "backups.signers[0].public_key",
                "does not match",
            ),
            (
                '[[backups.signers]]\nkind = "hsm"\n',
                "backups.signers[0].kind",
                "'hsm' is not one of",
            ),
        ],
    )
    def test_errors_name_file_key_and_line(
        self, tmp_path: Path, signer: str, key: str, message: str
    ) -> None:
        """Each signer mistake is reported with its key and line, never a key's bytes."""
        HmacFileSigner.create_key_file(tmp_path / "hmac.key")
        Ed25519FileSigner.create_key_file(tmp_path / "ed.key")
        (tmp_path / "ec.pem").write_bytes(ec_public_pem())
        (tmp_path / "private.pem").write_bytes(recovery_private_pem())
        text = signer.format(tmp=tmp_path, ec=tmp_path / "ec.pem", private=tmp_path / "private.pem")
        section = (
            f'[backups]\n[[backups.keks]]\nkind = "file"\npath = "{tmp_path}/kek.key"\n'
            f"create = true\n{text}"
        )
        with pytest.raises(ConfigError) as caught:
            parse_config(MINIMAL + section, "kvdr.toml", env={})
        issues = [i for i in caught.value.issues if i.key == key]
        assert issues and message in issues[0].message, [str(i) for i in caught.value.issues]
        assert issues[0].line is not None
        assert "PRIVATE" not in str(caught.value)
