"""Fixtures of the emulator's conformance suite shared by its test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.keyvault.keys import KeyClient

from tests.fixtures.emulator import EmulatorProcess, key_client

# The key conformance tests run against each of these: a Key Vault and a Managed HSM.
KEY_VAULT_SKUS = ("standard", "managed-hsm")


@pytest.fixture(scope="module", params=KEY_VAULT_SKUS)
def key_vault(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorProcess]:
    """One emulator per module and sku (standard, then managed-hsm) for the key tests."""
    sku = str(request.param)
    with EmulatorProcess(tmp_path_factory.mktemp(sku) / "state", sku=sku) as emu:
        yield emu


@pytest.fixture(scope="module")
def mhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A Managed HSM (`--sku managed-hsm`) for the tests of what only it does."""
    with EmulatorProcess(tmp_path_factory.mktemp("mhsm") / "state", sku="managed-hsm") as emu:
        yield emu


def is_managed_hsm(emu: EmulatorProcess) -> bool:
    """Whether the emulator under test is a Managed HSM."""
    return emu.sku == "managed-hsm"


@pytest.fixture(scope="module")
def kc(key_vault: EmulatorProcess) -> Iterator[KeyClient]:
    """A KeyClient for each vault of the suite: a standard vault and a Managed HSM."""
    with key_client(key_vault) as client:
        yield client


@pytest.fixture(scope="module")
def premium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A premium vault (HSM keys allowed), same geography as `emulator`."""
    with EmulatorProcess(tmp_path_factory.mktemp("premium") / "state", sku="premium") as emu:
        yield emu
