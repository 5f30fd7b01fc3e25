"""What the emulator acknowledged survives SIGKILL and restart."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceExistsError

from tests.fixtures.emulator import EmulatorFactory, secret_client


class TestPersistence:
    """State across process death."""

    def test_acknowledged_writes_survive_sigkill(self, make_emulator: EmulatorFactory) -> None:
        """Versions, updates, soft-deletes and modes written before SIGKILL are all served after."""
        emu = make_emulator()
        client = secret_client(emu)
        versions = [client.set_secret("kept", f"v{i}").properties.version for i in range(20)]
        client.update_secret_properties("kept", versions[0], tags={"t": "1"})
        client.set_secret("deleted-one", "x")
        client.begin_delete_secret("deleted-one").result()
        emu.set_read_only(True, exempt_principals=["kvdr-tests"])
        emu.set_clock_offset(3600)
        port = emu.port

        emu.restart(kill=True)

        assert emu.port == port  # same URL, so the same client keeps working
        assert client.get_secret("kept").value == "v19"
        assert client.get_secret("kept", versions[0]).properties.tags == {"t": "1"}
        assert len(list(client.list_properties_of_secret_versions("kept"))) == 20
        assert client.get_deleted_secret("deleted-one").name == "deleted-one"
        with pytest.raises(ResourceExistsError):
            client.set_secret("deleted-one", "y")
        assert emu.management("GET", "read-only")["read_only"] is True
        assert emu.management("GET", "clock")["offset_seconds"] == 3600

    def test_clean_stop_exits_zero_and_keeps_tls(self, make_emulator: EmulatorFactory) -> None:
        """SIGTERM exits 0; the CA is reused on restart so clients keep trusting it."""
        emu = make_emulator()
        ca_before = emu.ca_path.read_bytes()
        secret_client(emu).set_secret("s", "v")
        assert emu.stop() == 0
        emu.start()
        assert emu.ca_path.read_bytes() == ca_before
        assert secret_client(emu).get_secret("s").value == "v"
