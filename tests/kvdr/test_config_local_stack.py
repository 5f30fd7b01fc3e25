"""The written local configuration works against two real emulators (credential, CA bundle)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from kvdr.config import load_config, write_local_config
from tests.fixtures.emulator import EmulatorFactory
from vault.adapter import KeyVaultAdapter
from vault.credentials import build_credential
from vault.models import Attributes


class TestLocalStackConfig:
    """write_local_config -> load_config -> the vault adapter reaches both regions."""

    async def test_both_emulators_are_trusted_and_authenticated(
        self, tmp_path: Path, make_emulator: EmulatorFactory
    ) -> None:
        """The emulator credential and the bundled CAs let kvdr write to eastus and westus."""
        east = make_emulator(tmp_path / "vaults" / "eastus", region="eastus")
        west = make_emulator(tmp_path / "vaults" / "westus", region="westus")
        path = tmp_path / "kvdr.toml"
        write_local_config(
            path,
            emulator_state_dirs={"eastus": east.state_dir, "westus": west.state_dir},
            eastus_port=east.port,
            westus_port=west.port,
        )
        config = load_config(path, env={})
        assert config.regions["westus"].url == f"https://127.0.0.1:{west.port}"

        async with AsyncExitStack() as stack:
            credential = build_credential(config.credential)
            await stack.enter_async_context(credential)
            for region in ("eastus", "westus"):
                vault = await stack.enter_async_context(
                    KeyVaultAdapter.open(config.regions[region], credential, config.vault)
                )
                await vault.set_secret(f"probe-{region}", "v", Attributes())
                got = await vault.get_secret(f"probe-{region}")
                assert got.properties.name == f"probe-{region}"
