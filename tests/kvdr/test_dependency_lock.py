"""The hashed dependency lock that `make install` uses agrees with pyproject.toml.

A pin changed in pyproject.toml without `make lock` would leave the lock installing
the old release (or, with --require-hashes, failing the install on a fresh machine);
a lock entry without hashes would let a re-published file through.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, tuple[str, int]]:
    """Each locked package: (version, number of hashes)."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = _ENTRY.match(line)
        if match:
            current = _canonical(match.group(1))
            entries[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        declared.extend(extra)
    pins: dict[str, str] = {}
    for requirement in declared:
        name, _, version = requirement.partition("==")
        pins[_canonical(name.split("[")[0])] = version
    return pins


def test_every_pin_in_pyproject_is_locked_at_the_same_version() -> None:
    lock = _lock()
    pins = _pins()
    assert pins, "pyproject.toml declares no dependencies"
    unpinned = [name for name, version in pins.items() if not version]
    assert unpinned == [], f"dependencies without an exact pin: {unpinned}"
    drift = {
        name: (version, lock.get(name, ("missing", 0))[0])
        for name, version in pins.items()
        if lock.get(name, ("", 0))[0] != version
    }
    assert drift == {}, f"pyproject pin vs lock (run `make lock`): {drift}"


def test_every_locked_package_carries_hashes_and_the_build_backend_is_locked() -> None:
    lock = _lock()
    without_hashes = sorted(name for name, (_, hashes) in lock.items() if hashes == 0)
    assert without_hashes == []
    # Installed with --no-build-isolation, so the backend must come from the lock too.
    assert {"setuptools", "wheel"} <= lock.keys()


def test_the_install_target_requires_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes --no-deps -r requirements.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
