"""The hashed dependency locks agree with pyproject.toml and with each other.

requirements-dev.lock is what `make install` (and so every test) installs,
requirements.lock what the container image installs (the same versions, without the
test tools), requirements-checkov.lock the deploy scan's own environment. A pin changed
in pyproject.toml without `make lock` would leave a lock installing the old release (or,
with --require-hashes, failing the install on a fresh machine); a lock entry without
hashes would let a re-published file through.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


LOCKS = ("requirements-dev.lock", "requirements.lock", "requirements-checkov.lock")


def _lock(name: str = "requirements-dev.lock") -> dict[str, tuple[str, int]]:
    """Each locked package: (version, number of hashes)."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        match = _ENTRY.match(line)
        if match:
            current = _canonical(match.group(1))
            entries[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


def _pins(*extras: str, runtime: bool = True) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = list(project["project"]["dependencies"]) if runtime else []
    for extra in extras:
        declared.extend(project["project"]["optional-dependencies"][extra])
    pins: dict[str, str] = {}
    for requirement in declared:
        name, _, version = requirement.partition("==")
        pins[_canonical(name.split("[")[0])] = version
    return pins


def _drift(pins: dict[str, str], lock: dict[str, tuple[str, int]]) -> dict[str, object]:
    return {
        name: (version, lock.get(name, ("missing", 0))[0])
        for name, version in pins.items()
        if lock.get(name, ("", 0))[0] != version
    }


def test_every_pin_in_pyproject_is_locked_at_the_same_version() -> None:
    pins = _pins("test")
    assert pins, "pyproject.toml declares no dependencies"
    unpinned = [name for name, version in pins.items() if not version]
    assert unpinned == [], f"dependencies without an exact pin: {unpinned}"
    assert _drift(pins, _lock()) == {}, "pyproject pin vs requirements-dev.lock: run `make lock`"
    checkov = _pins("deploy-scan", runtime=False)
    assert _drift(checkov, _lock("requirements-checkov.lock")) == {}


def test_the_runtime_lock_is_the_dev_lock_without_the_test_tools() -> None:
    """The image runs the versions the tests ran, and none of the test tools."""
    dev, runtime = _lock(), _lock("requirements.lock")
    assert _drift(_pins(), runtime) == {}
    assert {n: v for n, (v, _) in runtime.items() if dev.get(n, ("", 0))[0] != v} == {}
    # A test tool is in the runtime lock only when a runtime package needs it (requests:
    # azure-core, msal); pytest, mypy, ruff and the rest stay out of the image.
    needed = _needed_by(ROOT / "requirements.lock")
    test_tools = set(_pins("test", runtime=False)) - set(_pins())
    assert {t for t in test_tools & set(runtime) if not needed.get(t)} == set()


def _needed_by(lock: Path) -> dict[str, set[str]]:
    """Per locked package, the packages pip-compile says need it (its `# via` lines)."""
    via: dict[str, set[str]] = {}
    current = ""
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _ENTRY.match(line)
        if match:
            current = _canonical(match.group(1))
            via[current] = set()
        elif line.startswith("    #   ") and current and not line.strip().startswith("#   -"):
            via[current].add(_canonical(line.strip().removeprefix("#").strip()))
        elif line.startswith("    # via ") and current:
            via[current].add(_canonical(line.removeprefix("    # via ").strip()))
    return {name: {v for v in vias if not v.startswith("-")} for name, vias in via.items()}


def test_every_locked_package_carries_hashes_and_the_build_backend_is_locked() -> None:
    for name in LOCKS:
        lock = _lock(name)
        without_hashes = sorted(p for p, (_, hashes) in lock.items() if hashes == 0)
        assert without_hashes == [], name
    # Installed with --no-build-isolation, so the backend must come from the lock too.
    for name in ("requirements-dev.lock", "requirements.lock"):
        assert {"setuptools", "wheel"} <= _lock(name).keys(), name


def test_every_install_requires_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes --no-deps -r requirements-dev.lock" in makefile
    assert "--require-hashes --no-deps -r requirements-checkov.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes --no-deps -r requirements.lock" in dockerfile
