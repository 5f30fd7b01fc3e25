"""The key reference of docs/configuration.md, generated from the configuration models.

`python -m kvdr.config_docs` rewrites the tables between the markers
`<!-- keys: <section> -->` and `<!-- end keys -->` from the `Section` models (key,
default, meaning) and, for the tables told apart by `kind` (credential, KEKs, signers),
from each kind's model (key, the kinds that take it, default, meaning); `--check` only
says whether the file is current (exit 1 when not), as CI and
tests/kvdr/test_config_docs.py run it. The prose around the tables stays hand-written.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic.fields import FieldInfo

from kvdr._config_audit import AuditSection
from kvdr._config_backups import KEK_KINDS, SIGNER_KINDS, BackupsSection
from kvdr._config_daemon import DaemonSection
from kvdr._config_failover import CommandTable, FailoverSection, WebhookTable
from kvdr._config_model import Check, KindSection, Section, kind_of
from kvdr._config_pairs import PairSection
from kvdr._config_storage import StorageSection
from kvdr._config_tuning import ReplicationSection, VaultSection
from kvdr._config_vaults import CREDENTIAL_KINDS, RegionSection
from kvdr.timegrammar import format_duration

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
SECTIONS: tuple[type[Section], ...] = (
    DaemonSection,
    RegionSection,
    StorageSection,
    ReplicationSection,
    VaultSection,
    PairSection,
    BackupsSection,
    FailoverSection,
    AuditSection,
    WebhookTable,
    CommandTable,
)
# Tables told apart by `kind`, by the name their marker gives them.
KIND_TABLES: dict[str, tuple[type[KindSection], ...]] = {
    "credential": CREDENTIAL_KINDS,
    "backups.keks": tuple(KEK_KINDS.values()),
    "backups.signers": tuple(SIGNER_KINDS.values()),
}
_BLOCK = re.compile(r"(<!-- keys: ([a-z.<>]+) -->\n)(.*?)(<!-- end keys -->)", re.S)


def render_table(model: type[Section]) -> str:
    """The Markdown table of one section's keys."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    skipped = {key for _, *others in model.joined.values() for key in others} | model.elsewhere
    for name, info in model.model_fields.items():
        written = info.alias or name
        if written in skipped:
            continue
        shown = f"`{written}`"
        if written in model.joined:
            separator, *others = model.joined[written]
            shown += "".join(f"{separator}`{other}`" for other in others)
        cells = (shown, _default(info), info.description or "")
        rows.append("| " + " | ".join(cells).replace("|  |", "| |") + " |")
    return "\n".join(rows) + "\n"


def render_kind_table(models: Sequence[type[KindSection]]) -> str:
    """The Markdown table of a table told apart by `kind`: its kinds (each with its
    model's docstring), then every other key once, with the kinds that take it."""
    kinds = [kind_of(model) for model in models]
    meanings = [
        f'`"{kind}"` ({_summary(model)})' for kind, model in zip(kinds, models, strict=True)
    ]
    rows = ["| key | kinds | default | meaning |", "|---|---|---|---|"]
    rows.append(f"| `kind` | | | {', '.join(meanings)} |")
    takers: dict[str, list[tuple[str, FieldInfo]]] = {}
    for kind, model in zip(kinds, models, strict=True):
        for name, info in model.model_fields.items():
            if name != "kind":
                takers.setdefault(info.alias or name, []).append((kind, info))
    for key, taken in takers.items():
        required = [kind for kind, info in taken if info.is_required()]
        if len(taken) == len(kinds) and not required:
            used_by = "all"
        else:
            used_by = ", ".join(k + (" (required)" if k in required else "") for k, _ in taken)
        optional = [info for _, info in taken if not info.is_required()]
        default = _default(optional[0]) if optional else "required"
        meaning = next((info.description for _, info in taken if info.description), "")
        rows.append(f"| `{key}` | {used_by} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def _summary(model: type[KindSection]) -> str:
    """A kind's model docstring (its own, not inherited) on one line."""
    return " ".join(str(model.__dict__.get("__doc__") or "").split())


def _default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown"), str):
        return str(extra["shown"])
    if info.is_required():
        return "required"
    value = info.default
    if isinstance(value, tuple | frozenset):
        names = sorted(str(getattr(item, "value", item)) for item in value)
        return "`[" + ", ".join(f'"{name}"' for name in names) + "]`"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    labels = [meta.label for meta in info.metadata if isinstance(meta, Check)]
    if labels and labels[0] == "duration" and isinstance(value, int | float):
        return f'`"{format_duration(float(value))}"`'
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def render(text: str) -> str:
    """`text` with every marked table regenerated; an unknown section is an error."""
    models = {model.section: model for model in SECTIONS}

    def table(match: re.Match[str]) -> str:
        section = match.group(2)
        if section in KIND_TABLES:
            return match.group(1) + render_kind_table(KIND_TABLES[section]) + match.group(4)
        if section not in models:
            raise ValueError(f"docs/configuration.md marks an unknown section {section!r}")
        return match.group(1) + render_table(models[section]) + match.group(4)

    return _BLOCK.sub(table, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvdr.config_docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    parser.add_argument("--file", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    current = args.file.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{args.file} is stale: run python -m kvdr.config_docs", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.file.write_text(wanted, encoding="utf-8")
        print(f"rewrote the key reference in {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
