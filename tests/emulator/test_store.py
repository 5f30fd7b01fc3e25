"""The emulator's building blocks on their own: store, backup blobs, throttle, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator import backup_blob
from emulator.auth import mint_token, principal_of
from emulator.errors import KeyVaultError
from emulator.settings import EmulatorSettings, SettingsError
from emulator.store import VersionStore, new_version_id
from emulator.throttle import Bucket, Throttle, key_ops_bucket


@pytest.fixture
def store(tmp_path: Path) -> VersionStore:
    return VersionStore(tmp_path / "vault.db")


def doc(value: str, exp: int | None = None) -> dict[str, object]:
    return {"value": value, "attributes": {"enabled": True, "exp": exp}}


class TestVersionStore:
    """Versioned objects, soft delete and singletons."""

    def test_versions_and_latest(self, store: VersionStore) -> None:
        """The latest is the last added; every version stays readable."""
        first = store.add_version("secret", "Db", doc("a"))
        second = store.add_version("secret", "db", doc("b"))
        latest = store.get_latest("secret", "DB")
        assert latest is not None and latest.version == second.version
        again = store.get_version("secret", "db", first.version)
        assert again is not None and again.doc["value"] == "a"
        assert store.count_versions("secret", "db") == 2

    def test_kinds_are_separate(self, store: VersionStore) -> None:
        """A key and a secret of the same name do not see each other."""
        store.add_version("secret", "same", doc("s"))
        assert store.get_latest("key", "same") is None
        assert store.name_state("key", "same") is None

    def test_list_latest_pages_by_name(self, store: VersionStore) -> None:
        """Listing pages by name from a skip key and shows each name once."""
        for name in ("c", "a", "b", "d"):
            store.add_version("secret", name, doc("1"))
            store.add_version("secret", name, doc("2"))
        first = store.list_latest("secret", None, 2)
        rest = store.list_latest("secret", first[-1].name, 10)
        assert [v.name for v in first] == ["a", "b"]
        assert [v.name for v in rest] == ["c", "d"]
        assert all(v.doc["value"] == "2" for v in first + rest)

    def test_soft_delete_recover_purge(self, store: VersionStore) -> None:
        """Soft delete hides and blocks a name; recover restores it; purge erases it."""
        store.add_version("secret", "x", doc("1"))
        store.add_version("secret", "x", doc("2"))
        deleted = store.soft_delete("secret", "x", 1_000, 7)
        assert deleted.scheduled_purge_date == 1_000 + 7 * 86400
        assert deleted.recovery_path == "/deletedsecrets/x"
        assert store.get_latest("secret", "x") is None
        assert store.name_state("secret", "x") == "deleted"
        assert store.recover("secret", "x").doc["value"] == "2"
        store.soft_delete("secret", "x", 2_000, 7)
        assert store.due_for_purge(2_000 + 7 * 86400) == [("secret", "x")]
        assert store.purge("secret", "x") is True
        assert store.name_state("secret", "x") is None
        assert store.purge("secret", "x") is False

    def test_transaction_rolls_back_together(self, store: VersionStore) -> None:
        """A failing multi-step change leaves nothing behind."""
        with pytest.raises(RuntimeError), store.transaction():
            store.add_version("certificate", "c", doc("cert"))
            store.add_version("key", "c", doc("key"))
            raise RuntimeError("boom")
        assert store.get_latest("certificate", "c") is None
        assert store.get_latest("key", "c") is None

    def test_survives_reopen(self, tmp_path: Path) -> None:
        """What was committed is there after reopening the file."""
        path = tmp_path / "vault.db"
        first = VersionStore(path)
        made = first.add_version("secret", "kept", doc("v"))
        first.put_value("contacts", "all", [{"email": "a@b.c"}])
        first.close()
        second = VersionStore(path)
        kept = second.get_version("secret", "kept", made.version)
        assert kept is not None and kept.doc["value"] == "v"
        assert second.get_value("contacts", "all") == [{"email": "a@b.c"}]

    def test_expiry_notices_once(self, store: VersionStore) -> None:
        """Expiring latest versions are found; a notice is recorded only once."""
        old = store.add_version("secret", "e", doc("1", exp=100))
        new = store.add_version("secret", "e", doc("2", exp=200))
        found = store.expiring_latest(150)
        assert found == []  # only the latest version counts, and it expires at 200
        assert [v.version for v in store.expiring_latest(250)] == [new.version]
        assert store.mark_notice("secret", "e", new.version, "Expired") is True
        assert store.mark_notice("secret", "e", new.version, "Expired") is False
        assert not store.has_notice("secret", "e", old.version, "Expired")

    def test_repr_hides_documents(self, store: VersionStore) -> None:
        """A stored version's repr never shows its document (it may hold a value)."""
        stored = store.add_version("secret", "r", doc("super-secret-value"))
        assert "super-secret-value" not in repr(stored)

    def test_version_ids_look_like_azure(self) -> None:
        """Version ids are 32 lowercase hex characters."""
        version = new_version_id()
        assert len(version) == 32 and version == version.lower()
        int(version, 16)


class TestBackupBlob:
    """Sealing and opening backups."""

    def test_round_trip_same_geo(self) -> None:
        """A blob opens in the same geography and hides its content."""
        blob = backup_blob.seal("secret", "us", {"name": "n", "versions": ["the-value"]})
        assert b"the-value" not in blob
        assert backup_blob.open_blob("secret", "us", blob)["versions"] == ["the-value"]

    def test_other_geo_refused(self) -> None:
        """Another geography gets 400 naming both geographies."""
        blob = backup_blob.seal("key", "us", {"name": "n"})
        with pytest.raises(KeyVaultError) as caught:
            backup_blob.open_blob("key", "eu", blob)
        assert caught.value.status == 400
        assert "geography us" in caught.value.message and "geography eu" in caught.value.message

    def test_tampered_or_wrong_kind(self) -> None:
        """A flipped byte or a blob of another kind is refused."""
        blob = bytearray(backup_blob.seal("secret", "us", {"name": "n"}))
        blob[-1] ^= 1
        with pytest.raises(KeyVaultError, match="malformed or was altered"):
            backup_blob.open_blob("secret", "us", bytes(blob))
        with pytest.raises(KeyVaultError, match="holds a secret"):
            backup_blob.open_blob("key", "us", backup_blob.seal("secret", "us", {}))

    def test_base64url_value(self) -> None:
        """The REST value is unpadded base64url and decodes back."""
        blob = backup_blob.seal("secret", "us", {"x": 1})
        value = backup_blob.encode_value(blob)
        assert "=" not in value and "+" not in value and "/" not in value
        assert backup_blob.decode_value(value, "secret") == blob
        with pytest.raises(KeyVaultError):
            backup_blob.decode_value("***", "secret")


class TestThrottle:
    """Sliding windows."""

    def test_limit_then_retry_after(self) -> None:
        """The request over the limit is 429 with a Retry-After of 1-10 s."""
        throttle = Throttle(enabled=True)
        bucket = Bucket("tiny", 3)
        for _ in range(3):
            throttle.charge(bucket)
        with pytest.raises(KeyVaultError) as caught:
            throttle.charge(bucket)
        assert caught.value.status == 429 and caught.value.code == "Throttled"
        assert 1 <= int(caught.value.headers["Retry-After"]) <= 10

    def test_disabled_counts_nothing(self) -> None:
        """--throttle off never refuses."""
        throttle = Throttle(enabled=False)
        for _ in range(1000):
            throttle.charge(Bucket("tiny", 1))

    def test_key_budgets(self) -> None:
        """Key budgets follow the published table."""
        assert key_ops_bucket("RSA", 2048, hsm=False).limit == 4000
        assert key_ops_bucket("RSA", 3072, hsm=False).limit == 1000
        assert key_ops_bucket("RSA-HSM", 4096, hsm=True).limit == 250
        assert key_ops_bucket("EC", None, hsm=True).limit == 2000


class TestTokensAndSettings:
    """Token principals and settings validation."""

    def test_token_carries_principal(self) -> None:
        """A minted token's oid reads back; opaque tokens have none."""
        token, expires = mint_token("app-7", "https://vault.azure.net", now=1_000)
        assert principal_of(token) == "app-7"
        assert expires > 1_000
        assert principal_of("opaque") is None
        assert principal_of("a.%%%.c") is None

    def test_settings_name_the_option(self, tmp_path: Path) -> None:
        """Each invalid setting names its command-line option."""
        for kwargs, option in (
            ({"retention_days": 6}, "--retention-days"),
            ({"sku": "gold"}, "--sku"),
            ({"throttle": "maybe"}, "--throttle"),
            ({"latency_ms": -5}, "--latency"),
            ({"events_to": ("ftp://x",)}, "--events-to"),
        ):
            with pytest.raises(SettingsError) as caught:
                EmulatorSettings(state_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
            assert caught.value.option == option
        settings = EmulatorSettings(state_dir=tmp_path, purge_protection=True)
        assert settings.recovery_level == "Recoverable"
