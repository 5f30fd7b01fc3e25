"""Fixtures of the emulator's conformance suite shared by its test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.emulator import EmulatorProcess

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
