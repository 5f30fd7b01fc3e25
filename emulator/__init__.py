"""kvdr's Key Vault data-plane emulator: an aiohttp HTTPS server the official SDKs accept.

It stands alone (imports nothing else of kvdr). Start it with `kvdr emulator`; see
docs/emulator.md.
"""

from emulator.errors import KeyVaultError
from emulator.settings import EmulatorSettings, SettingsError

__all__ = ["EmulatorSettings", "KeyVaultError", "SettingsError"]
