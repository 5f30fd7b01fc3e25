"""The dashboard in a real browser: headless Chromium loads it, sees the regions and the
pair, and sees the RPO figure change after a burst of writes (kvdr/web/dashboard.html)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonProcess, free_port, write_config
from tests.fixtures.regions import WorldFactory
from tests.fixtures.waiting import wait_for
from vault.models import Attributes

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make install-browser` (Debian package chromium)")
    return path


def browse(url: str, profile: Path, *args: str) -> str:
    """Run headless Chromium on `url` long enough for the page's fetches and rendering."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=4000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rpo_cell(dom: str) -> float:
    match = re.search(r'class="[^"]*\brpo\b[^"]*">([0-9.]+)<', dom)
    assert match, "no RPO figure on the page"
    return float(match.group(1))


class TestDashboardInBrowser:
    async def test_regions_pair_and_rpo_change(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """Both regions and the pair render; the RPO figure rises after writes that
        cannot be applied yet, and a screenshot is kept as an artifact."""
        port = free_port()
        world = await make_world()
        config = write_config(world, tmp_path / "kvdr.toml", port=port, poll_interval="300ms")
        daemon = DaemonProcess(config, port).start()
        try:
            url = f"http://127.0.0.1:{port}/"
            dom = await asyncio.to_thread(browse, url, tmp_path / "profile-1", "--dump-dom")
            assert 'data-region="eastus"' in dom and 'data-region="westus"' in dom
            assert 'data-pair="app"' in dom and 'data-target="westus"' in dom
            before = rpo_cell(dom)
            assert before == 0.0

            # The secondary refuses writes for a while: the burst stays pending.
            world.emulators["westus"].set_read_only(True)
            await asyncio.gather(
                *(
                    world.vaults["eastus"].set_secret(f"burst-{i}", "v", Attributes())
                    for i in range(20)
                )
            )

            # Until the daemon itself counts the burst as pending (the figure only grows
            # while it stays pending), instead of a fixed wait.
            def pending_rpo() -> float | None:
                rpo = daemon.status()["pairs"][0]["rpo_seconds"]
                return float(rpo) if rpo is not None and rpo >= 0.2 else None

            await wait_for(pending_rpo, 30, "the daemon to count the burst as pending")
            dom = await asyncio.to_thread(browse, url, tmp_path / "profile-2", "--dump-dom")
            after = rpo_cell(dom)
            assert after > before
            # Seconds after the burst, well under the 30 s objective: no alarm banner yet.
            banner = re.search(r'<div id="banner"[^>]*>([^<]*)</div>', dom)
            assert banner is not None and banner.group(1) == ""

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            await asyncio.to_thread(
                browse,
                url,
                tmp_path / "profile-3",
                f"--screenshot={shot}",
                "--window-size=1280,900",
            )
            assert shot.stat().st_size > 10_000
            world.emulators["westus"].set_read_only(False)
        finally:
            daemon.terminate()

    async def test_conflict_is_listed_for_an_operator(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """A target secret kvdr did not write shows in "Needs an operator" with the
        target, the item and the remedy, and is counted in the pair's row."""
        port = free_port()
        world = await make_world()
        await world.vaults["eastus"].set_secret("taken", "primary-value", Attributes())
        await world.vaults["westus"].set_secret("taken", "someone-elses", Attributes())
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        daemon = DaemonProcess(config, port).start()
        try:
            await wait_for(
                lambda: daemon.status()["pairs"][0]["targets"][0]["conflicts"], 20, "the conflict"
            )
            url = f"http://127.0.0.1:{port}/"
            dom = await asyncio.to_thread(browse, url, tmp_path / "profile", "--dump-dom")
        finally:
            daemon.terminate()
        row = re.search(r'<tr data-pair="app" data-state="conflict">(.*?)</tr>', dom)
        assert row is not None, "no conflict row on the page"
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
        assert cells[:4] == ["app", "westus", "conflict", "secret/taken"]
        assert "adopt" in cells[4]
        assert "primary-value" not in dom and "someone-elses" not in dom

    async def test_token_from_the_fragment_beyond_loopback(
        self, make_world: WorldFactory, tmp_path: Path
    ) -> None:
        """With /status behind a bearer token, the page opened as /#token=... sends it
        and renders the regions and the pair; the token never reaches the daemon's log."""
        world = await make_world()
        port = free_port()
        config = write_config(world, tmp_path / "kvdr.toml", port=port)
        token = "dashboard-token-0123456789abcdef"
        secret = tmp_path / "events.secret"
        secret.write_text("dashboard-events-secret-0123456789\n")
        secret.chmod(0o600)
        env = {
            "KVDR__DAEMON__LISTEN": f"0.0.0.0:{port}",
            "KVDR__DAEMON__EVENTS_SECRET_FILE": str(secret),
            "KVDR__DAEMON__STATUS_TOKEN_ENV": "KVDR_DASHBOARD_TOKEN",
            "KVDR_DASHBOARD_TOKEN": token,
        }
        daemon = DaemonProcess(config, port, env=env, token=token).start()
        try:
            url = f"http://127.0.0.1:{port}/#token={token}"
            dom = await asyncio.to_thread(browse, url, tmp_path / "profile", "--dump-dom")
        finally:
            daemon.terminate()
        assert 'data-region="eastus"' in dom and 'data-pair="app"' in dom
        assert token not in daemon.logs()


class TestLastDrillInBrowser:
    def test_last_drill_per_pair_is_shown(self, tmp_path: Path) -> None:
        """The page lists /status's `drills` (the daemon's last scheduled drill per
        scenario and pair) with its verdict. The status document is served as a file
        here: the scheduler that fills it is tested in tests/kvdr/test_drill_schedule.py."""
        import http.server
        import json
        import threading

        from kvdr import web

        site = tmp_path / "site"
        site.mkdir()
        (site / "index.html").write_bytes(
            (Path(web.__file__).parent / "dashboard.html").read_bytes()
        )
        (site / "status").write_text(
            json.dumps(
                {
                    "instance": "drill-test",
                    "regions": [],
                    "pairs": [],
                    "drills": [
                        {
                            "scenario": "flaky-primary",
                            "pair": "demo",
                            "verdict": "fail",
                            "ended_at": "2026-01-05T03:00:30+00:00",
                            "report": "/var/lib/kvdr/drills/flaky-primary/20260105T030000Z",
                        }
                    ],
                }
            )
        )

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(site), **kwargs)  # type: ignore[arg-type]

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            dom = browse(url, tmp_path / "profile", "--dump-dom")
        finally:
            server.shutdown()
        row = re.search(r'<tr data-pair="demo" data-scenario="flaky-primary">(.*?)</tr>', dom)
        assert row is not None, dom[-3000:]
        assert '<td class="bad">fail</td>' in row.group(1)
