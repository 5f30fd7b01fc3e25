"""The documentation's references to tests and code hold: every `tests/...py` (with an
optional `::Class::test`) and every top-level module path the docs name exists, so the
threat model's "tests" column cannot silently point at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)((?:::[\w…\.]+)*)`")


def references() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for match in TEST_REF.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.relative_to(ROOT).as_posix(), match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize(("doc", "path", "names"), references())
def test_a_named_test_exists(doc: str, path: str, names: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"{doc} names {path}, which does not exist"
    text = source.read_text(encoding="utf-8")
    for name in (n for n in names.split("::") if n and n != "…"):
        assert re.search(rf"\b(class|def) {re.escape(name)}\b", text), (
            f"{doc} names {path}::{name}, which is not in it"
        )


def test_the_threat_model_names_tests() -> None:
    assert sum(1 for doc, _, _ in references() if doc == "docs/security.md") >= 20
