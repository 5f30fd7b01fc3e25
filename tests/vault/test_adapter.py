"""KeyVaultAdapter against the real emulator, through the official aio SDK clients."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from tests.fixtures.emulator import EmulatorFactory, EmulatorProcess
from tests.vault.conftest import open_adapter, open_at, sample, unique
from vault import (
    Attributes,
    BadRequest,
    DeletedButRecoverable,
    Forbidden,
    ItemKind,
    ItemNotFound,
    KeyVaultAdapter,
    NoAnswer,
    RequestNotSent,
    VaultClient,
    VaultSettings,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestSecrets:
    async def test_is_a_vault_client(self, vault: KeyVaultAdapter) -> None:
        """The adapter satisfies the VaultClient seam every other part is written against."""
        client: VaultClient = vault
        assert client.ref.url.startswith("https://127.0.0.1:")

    async def test_set_then_get_round_trips_value_and_attributes(
        self, vault: KeyVaultAdapter
    ) -> None:
        """A written secret reads back with its value, content type, tags and dates."""
        name = unique("roundtrip")
        nbf = datetime(2030, 1, 1, tzinfo=UTC)
        exp = nbf + timedelta(days=30)
        written = await vault.set_secret(
            name,
            "s3cr3t-value",
            Attributes(
                content_type="text/plain",
                tags={"team": "core"},
                not_before=nbf,
                expires_on=exp,
            ),
        )
        got = await vault.get_secret(name)
        assert got.value == "s3cr3t-value"
        assert got.properties.version == written.version
        assert got.properties.content_type == "text/plain"
        assert got.properties.tags == {"team": "core"}
        assert (got.properties.not_before, got.properties.expires_on) == (nbf, exp)
        assert got.properties.enabled is True

    async def test_get_by_version(self, vault: KeyVaultAdapter) -> None:
        """An older version is still readable by its id."""
        name = unique("byversion")
        first = await vault.set_secret(name, "one", Attributes())
        await vault.set_secret(name, "two", Attributes())
        assert (await vault.get_secret(name, first.version)).value == "one"
        assert (await vault.get_secret(name)).value == "two"

    async def test_list_versions_oldest_first(self, vault: KeyVaultAdapter) -> None:
        """All versions come back by creation time, the current version last."""
        name = unique("versions")
        written = [(await vault.set_secret(name, f"v{i}", Attributes())).version for i in range(30)]
        versions = await vault.list_versions(ItemKind.SECRET, name)
        # Versions share whole-second timestamps; order by time, current one last.
        assert sorted(v.version for v in versions) == sorted(written)
        created = [v.created_on for v in versions]
        assert created == sorted(created)  # type: ignore[type-var]
        assert versions[-1].version == written[-1]

    async def test_list_versions_with_disabled_current(self, vault: KeyVaultAdapter) -> None:
        """A disabled current version (unreadable, 403) does not stop the version listing."""
        name = unique("disabledcurrent")
        first = await vault.set_secret(name, "a", Attributes())
        second = await vault.set_secret(name, "b", Attributes(enabled=False))
        with pytest.raises(Forbidden):
            await vault.get_secret(name)
        versions = await vault.list_versions(ItemKind.SECRET, name)
        assert {v.version for v in versions} == {first.version, second.version}

    async def test_list_items_pages_through_everything(self, vault: KeyVaultAdapter) -> None:
        """More secrets than one page (25) are all listed, each once."""
        names = {unique("listed") for _ in range(60)}
        await asyncio.gather(*(vault.set_secret(n, "x", Attributes()) for n in names))
        listed = [p.name for p in await vault.list_items(ItemKind.SECRET)]
        assert names <= set(listed)
        assert len(listed) == len(set(listed))

    async def test_update_properties_changes_one_version(self, vault: KeyVaultAdapter) -> None:
        """Attributes change on the given version only; the value stays."""
        name = unique("update")
        first = await vault.set_secret(name, "keep-me", Attributes(tags={"a": "1"}))
        second = await vault.set_secret(name, "newer", Attributes(tags={"b": "2"}))
        updated = await vault.update_properties(
            ItemKind.SECRET,
            name,
            first.version,
            Attributes(enabled=False, tags={"c": "3"}, content_type="application/json"),
        )
        assert updated.version == first.version
        assert (updated.enabled, updated.tags, updated.content_type) == (
            False,
            {"c": "3"},
            "application/json",
        )
        versions = {v.version: v for v in await vault.list_versions(ItemKind.SECRET, name)}
        assert versions[second.version].tags == {"b": "2"}
        assert versions[second.version].enabled is True

    async def test_delete_recover_purge_cycle(self, vault: KeyVaultAdapter) -> None:
        """Delete waits until deleted, recover until live, purge removes it for good."""
        name = unique("cycle")
        await vault.set_secret(name, "v", Attributes())
        await vault.delete_item(ItemKind.SECRET, name)
        deleted = await vault.get_deleted(ItemKind.SECRET, name)
        assert deleted is not None and deleted.name == name
        assert deleted.deleted_on is not None and deleted.scheduled_purge_date is not None
        assert name in {d.name for d in await vault.list_deleted(ItemKind.SECRET)}
        assert name not in {p.name for p in await vault.list_items(ItemKind.SECRET)}

        await vault.recover_item(ItemKind.SECRET, name)
        assert (await vault.get_secret(name)).value == "v"
        assert await vault.get_deleted(ItemKind.SECRET, name) is None

        await vault.delete_item(ItemKind.SECRET, name)
        await vault.purge_item(ItemKind.SECRET, name)
        assert await vault.get_deleted(ItemKind.SECRET, name) is None
        with pytest.raises(ItemNotFound):
            await vault.get_secret(name)

    async def test_delete_and_recover_are_idempotent(self, vault: KeyVaultAdapter) -> None:
        """Deleting a deleted item or recovering a live one succeeds without change."""
        name = unique("idem")
        await vault.set_secret(name, "v", Attributes())
        await vault.recover_item(ItemKind.SECRET, name)  # live already
        await vault.delete_item(ItemKind.SECRET, name)
        await vault.delete_item(ItemKind.SECRET, name)  # deleted already
        assert await vault.get_deleted(ItemKind.SECRET, name) is not None

    async def test_delete_of_unknown_name_is_not_found(self, vault: KeyVaultAdapter) -> None:
        """Deleting a name that never existed is ItemNotFound, not silent success."""
        with pytest.raises(ItemNotFound):
            await vault.delete_item(ItemKind.SECRET, unique("never"))

    async def test_backup_restore_after_purge(self, vault: KeyVaultAdapter) -> None:
        """A backup restores every version once the name is purged."""
        name = unique("backup")
        for value in ("a", "b", "c"):
            await vault.set_secret(name, value, Attributes())
        before = [v.version for v in await vault.list_versions(ItemKind.SECRET, name)]
        blob = await vault.backup_item(ItemKind.SECRET, name)
        assert isinstance(blob, bytes) and blob
        await vault.delete_item(ItemKind.SECRET, name)
        await vault.purge_item(ItemKind.SECRET, name)
        restored = await vault.restore_item(ItemKind.SECRET, blob)
        assert restored.name == name
        after = [v.version for v in await vault.list_versions(ItemKind.SECRET, name)]
        assert after == before
        assert (await vault.get_secret(name)).value == "c"

    async def test_probe_answers(self, vault: KeyVaultAdapter, emulator: EmulatorProcess) -> None:
        """A probe of a running vault returns quietly after one listing request."""
        emulator.reset_stats()
        assert await vault.probe() is None
        by_op = emulator.stats()["by_op"]
        # (Plus a 401 bearer challenge when the SDK has not met this vault before: its
        # challenge cache is per process, so that depends on which tests ran first.)
        assert (list(by_op), by_op["GetSecrets"]["200"]) == (["GetSecrets"], 1)
        label = vault.ref.label
        assert sample("kvdr_vault_requests_total", vault=label, op="probe", code="200") == 1

    async def test_every_request_is_counted(self, vault: KeyVaultAdapter) -> None:
        """Each HTTP request lands in kvdr_vault_requests_total, delete's poll included."""
        label = vault.ref.label
        name = unique("counted")
        await vault.set_secret(name, "v", Attributes())
        await vault.delete_item(ItemKind.SECRET, name)
        assert sample("kvdr_vault_requests_total", vault=label, op="set_secret", code="200") == 1
        # DELETE plus one GET of the deleted secret by the SDK's poller (the emulator
        # deletes at once, so the poller's first look finds it).
        assert sample("kvdr_vault_requests_total", vault=label, op="delete_item", code="200") == 2
        assert (
            sample("kvdr_vault_request_duration_seconds_count", vault=label, op="set_secret") == 1
        )


class TestErrors:
    async def test_not_found(self, vault: KeyVaultAdapter) -> None:
        """A missing secret is ItemNotFound naming vault, op and item."""
        name = unique("missing")
        with pytest.raises(ItemNotFound) as info:
            await vault.get_secret(name)
        err = info.value
        assert (err.status, err.code, err.op, err.vault) == (
            404,
            "SecretNotFound",
            "get_secret",
            vault.ref.label,
        )
        assert f"secret/{name}" in str(err) and vault.ref.label in str(err)
        assert err.__cause__ is not None  # raised from the SDK's error

    async def test_set_into_soft_deleted_name(self, vault: KeyVaultAdapter) -> None:
        """Writing a soft-deleted name is DeletedButRecoverable (409), and recover fixes it."""
        name = unique("softdeleted")
        await vault.set_secret(name, "old", Attributes())
        await vault.delete_item(ItemKind.SECRET, name)
        with pytest.raises(DeletedButRecoverable) as info:
            await vault.set_secret(name, "new", Attributes())
        assert info.value.status == 409
        await vault.recover_item(ItemKind.SECRET, name)
        await vault.set_secret(name, "new", Attributes())
        assert (await vault.get_secret(name)).value == "new"

    async def test_read_only_vault_is_forbidden(self, make_emulator: EmulatorFactory) -> None:
        """A vault fenced read-only answers writes with Forbidden; reads still work."""
        emu = make_emulator()
        async with open_adapter(emu) as vault:
            name = unique("fenced")
            await vault.set_secret(name, "before", Attributes())
            emu.set_read_only(True)
            with pytest.raises(Forbidden) as info:
                await vault.set_secret(name, "after", Attributes())
            assert info.value.status == 403
            assert (await vault.get_secret(name)).value == "before"

    async def test_unreachable_port_is_request_not_sent(self) -> None:
        """Nothing listening: RequestNotSent after the configured attempts."""
        settings = VaultSettings(max_attempts=2, backoff_base_seconds=0.01)
        async with open_at(f"https://127.0.0.1:{_free_port()}", settings) as vault:
            with pytest.raises(RequestNotSent) as info:
                await vault.get_secret("anything")
            assert vault.rate.stats().retries == 1
            with pytest.raises(RequestNotSent):
                await vault.probe()
        assert "get_secret secret/anything" in str(info.value)
        assert "vault unreachable" in str(info.value)

    async def test_slow_answer_is_no_answer(self, make_emulator: EmulatorFactory) -> None:
        """An answer slower than the request timeout is NoAnswer (sent, no reply)."""
        emu = make_emulator(latency_ms=1500)
        async with open_adapter(
            emu, request_timeout_seconds=0.3, max_attempts=2, backoff_base_seconds=0.01
        ) as vault:
            with pytest.raises(NoAnswer):
                await vault.get_secret("anything")

    async def test_invalid_name_refused_before_sending(self, vault: KeyVaultAdapter) -> None:
        """A bad name is BadRequest naming the name, and no request goes out."""
        before = vault.rate.stats().other_in_window
        with pytest.raises(BadRequest, match="invalid secret name 'no spaces/allowed'"):
            await vault.set_secret("no spaces/allowed", "v", Attributes())
        with pytest.raises(BadRequest, match="invalid key name ''"):
            await vault.list_versions(ItemKind.KEY, "")
        assert vault.rate.stats().other_in_window == before

    async def test_garbage_backup_is_bad_request(self, vault: KeyVaultAdapter) -> None:
        """A backup blob the vault cannot open is refused as BadRequest, not retried."""
        with pytest.raises(BadRequest) as info:
            await vault.restore_item(ItemKind.SECRET, b"not a backup")
        assert info.value.status == 400
        assert vault.rate.stats().retries == 0
        with pytest.raises(BadRequest, match="backup must be non-empty bytes"):
            await vault.restore_item(ItemKind.SECRET, b"")


class TestThrottling:
    async def test_burst_above_limit_completes_and_adapts(
        self, make_emulator: EmulatorFactory
    ) -> None:
        """400 sets against a 300-per-10 s vault, budget set too high: 429s, then all land."""
        emu = make_emulator(throttle="azure")
        async with open_adapter(emu, secret_creates_per_10s=1000) as vault:
            label = vault.ref.label
            names = [unique("burst") for _ in range(400)]
            await asyncio.gather(
                *(vault.set_secret(n, f"value-of-{n}", Attributes()) for n in names)
            )
            stats = vault.rate.stats()
            assert stats.throttled > 0
            assert sample("kvdr_throttled_total", vault=label) == stats.throttled
            assert stats.lowest_concurrency_limit < stats.max_concurrency
            assert sample("kvdr_vault_requests_total", vault=label, op="set_secret", code="429")
            # Nothing lost, nothing doubled.
            listed = {p.name for p in await vault.list_items(ItemKind.SECRET)}
            assert set(names) <= listed
            for n in names[::20]:
                assert len(await vault.list_versions(ItemKind.SECRET, n)) == 1
                assert (await vault.get_secret(n)).value == f"value-of-{n}"

    async def test_default_budget_never_draws_a_429(self, make_emulator: EmulatorFactory) -> None:
        """With the default budget (270 per 10 s) the same burst sees no 429 at all."""
        emu = make_emulator(throttle="azure")
        async with open_adapter(emu) as vault:
            names = [unique("paced") for _ in range(400)]
            await asyncio.gather(*(vault.set_secret(n, "v", Attributes()) for n in names))
            assert vault.rate.stats().throttled == 0
            assert sample("kvdr_throttled_total", vault=vault.ref.label) == 0
            listed = {p.name for p in await vault.list_items(ItemKind.SECRET)}
            assert set(names) <= listed


class TestNoValueLeaks:
    async def test_values_absent_from_errors_logs_and_repr(
        self, make_emulator: EmulatorFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A secret value never shows in exception text, captured logs or any repr."""
        emu = make_emulator()
        value = "VALUE-7f3a9c-do-not-print"
        name = unique("leak")
        seen: list[str] = []
        caplog.set_level("DEBUG")
        failures: list[BaseException] = []
        with capture_logs() as logs:
            async with open_adapter(emu) as vault:
                written = await vault.set_secret(name, value, Attributes())
                got = await vault.get_secret(name)
                seen += [repr(vault), repr(got), repr(written), str(got)]
                await vault.delete_item(ItemKind.SECRET, name)
                with pytest.raises(DeletedButRecoverable) as soft_deleted:
                    await vault.set_secret(name, value, Attributes())
                failures.append(soft_deleted.value)
                await vault.recover_item(ItemKind.SECRET, name)
                emu.set_read_only(True)
                with pytest.raises(Forbidden) as fenced:
                    await vault.set_secret(name, value, Attributes())
                failures.append(fenced.value)
            # A retried write logs `vault.retry`; the value must not ride along.
            settings = VaultSettings(max_attempts=2, backoff_base_seconds=0.01)
            async with open_at(f"https://127.0.0.1:{_free_port()}", settings) as nowhere:
                with pytest.raises(RequestNotSent) as unsent:
                    await nowhere.set_secret(name, value, Attributes())
                failures.append(unsent.value)
        for exc in failures:
            seen += [str(exc), repr(exc), str(exc.__cause__), repr(exc.__cause__)]
        assert any(entry["event"] == "vault.retry" for entry in logs)
        seen += [repr(entry) for entry in logs]
        seen.append(caplog.text)
        assert got.value == value
        assert all(value not in text for text in seen)
