"""Helpers for the vault seam's tests: adapters wired to a real emulator."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.emulator import AsyncStaticTokenCredential, EmulatorProcess
from vault import KeyVaultAdapter, VaultRef, VaultSettings

_names = itertools.count()


def unique(prefix: str) -> str:
    """A vault object name no other test of the session uses."""
    return f"{prefix}-{next(_names)}"


def emulator_settings(emu: EmulatorProcess, **overrides: Any) -> VaultSettings:
    """Adapter settings for an emulator: trust its CA, skip the challenge domain check."""
    base: dict[str, Any] = {"ca_file": str(emu.ca_path), "verify_challenge_resource": False}
    base.update(overrides)
    return VaultSettings(**base)


@asynccontextmanager
async def open_adapter(emu: EmulatorProcess, **overrides: Any) -> AsyncIterator[KeyVaultAdapter]:
    """An adapter on `emu` with a fresh metrics label (the `vault` label is the region)."""
    async with open_at(emu.url, emulator_settings(emu, **overrides)) as adapter:
        yield adapter


@asynccontextmanager
async def open_at(url: str, settings: VaultSettings) -> AsyncIterator[KeyVaultAdapter]:
    """An adapter on any URL (for a port where nothing listens, say)."""
    ref = VaultRef(unique("region"), url)
    async with KeyVaultAdapter.open(ref, AsyncStaticTokenCredential(), settings) as adapter:
        yield adapter


def sample(name: str, **labels: str) -> float:
    """Current value of one Prometheus sample (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def vault(emulator: EmulatorProcess) -> AsyncIterator[KeyVaultAdapter]:
    """An adapter on the module's emulator with its own metrics label."""
    async with open_adapter(emulator) as adapter:
        yield adapter
