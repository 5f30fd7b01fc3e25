"""Shared fixtures: real emulators and Azurite, started per test session or test."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.azurite",
    "tests.fixtures.chaos",
    "tests.fixtures.regions",
    "tests.fixtures.event_receiver",
]
