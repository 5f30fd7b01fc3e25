"""`[[pairs]]`: which vault mirrors into which, and which items.

Besides each pair's own rules (known regions, at least one secondary, not the primary,
no duplicates), pairs are checked against each other: two pairs that watch the same
primary, or write into the same secondary, must not select the same items, or kvdr
would journal every change twice or have two pairs overwrite each other's copies.
Globs cannot be intersected exactly in general, so the check is best effort: it tries
example names built from every include pattern and reports a certain overlap as an
error with the example, and two catch-all (`*`) pairs it cannot separate as a warning.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Annotated

from kvdr._config_fields import Invalid, Problems, integer, suggest, text, text_list
from kvdr._config_lines import KeyPath
from kvdr._config_model import (
    Check,
    Duration,
    Flag,
    Fraction,
    Section,
    Text,
    build,
    read_section,
    setting,
)
from replicator.settings import PairSettings
from vault.models import ItemKind, VaultRef

_PAIR_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
_KIND_NAMES = tuple(kind.value for kind in ItemKind)
# Key Vault object names: 1-127 letters, digits and hyphens. Glob metacharacters aside, a
# pattern with anything else can never match.
_NAME_OR_GLOB = re.compile(r"[A-Za-z0-9*?\[\]!-]+")
_VAULT_NAME = re.compile(r"[A-Za-z0-9-]{1,127}")


def _pair_name(value: object) -> str:
    name = text(value)
    if not _PAIR_NAME.fullmatch(name):
        raise Invalid(f"{name!r} is not a valid pair name: 1-63 letters, digits, '-' or '_'")
    return name


def _kinds(value: object) -> frozenset[ItemKind]:
    names = text_list(value)
    if not names:
        raise Invalid("must name at least one kind: secret, key or certificate")
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name not in _KIND_NAMES:
            raise Invalid(
                f"{name!r} is not a kind: use secret, key or certificate"
                f"{suggest(name, _KIND_NAMES)}",
                at=index,
            )
        if name in seen:
            raise Invalid(f"{name!r} is listed twice", at=index)
        seen.add(name)
    return frozenset(ItemKind(name) for name in names)


Names = Annotated[tuple[str, ...], Check(text_list, "array of strings")]


class PairSection(Section):
    section = "pairs"
    hints = {
        "primary": " (the region replicated from)",
        "secondaries": " (the regions replicated to)",
    }

    name: Annotated[str, Check(_pair_name, "string")] = setting(
        ...,
        "unique (ignoring case), 1-63 letters, digits, `-`, `_`; used in blob paths and "
        "metric labels",
    )
    primary: Text = setting(..., "region name to replicate from")
    secondaries: Names = setting(
        ..., "region names to replicate to: at least one, not the primary, no duplicates"
    )
    kinds: Annotated[frozenset[ItemKind], Check(_kinds, "array of strings")] = setting(
        frozenset({ItemKind.SECRET}),
        "any of `secret`, `key`, `certificate`; keys and certificates travel by backup and "
        "restore (same geography only) and HSM keys need a premium secondary "
        "(`regions.<name>.sku`); see [replication.md](replication.md#mirroring-a-key)",
    )
    include: Names = setting(
        ("*",),
        "glob patterns (`*`, `?`, `[a-z]`, `[!a-z]`) of item names to mirror; must not be empty",
    )
    exclude: Names = setting(
        (), "glob patterns of item names to leave out (applied after `include`)"
    )
    adopt: Flag = setting(
        False,
        "take over target items that kvdr did not write (they lack the `kvdr-source-version` "
        "tag); otherwise they are left alone and reported as conflicts. Certificates: new "
        "versions are imported on top when the key is exportable; keys: never (that would "
        "need a purge)",
    )
    rpo_objective_seconds: Duration | None = setting(
        None,
        "this pair's RPO objective",
        shown="`replication.rpo_objective`",
    )
    deletion_guard_min_items: Annotated[int, Check(integer(0), "integer")] | None = setting(
        None,
        "this pair's deletion guard minimum; raising it (or the fraction) above what a "
        "tripped guard found releases the guard",
        shown="`replication.deletion_guard_min_items`",
    )
    deletion_guard_fraction: Fraction | None = setting(
        None,
        "this pair's deletion guard fraction",
        shown="`replication.deletion_guard_fraction`",
    )
    expiry_horizon_seconds: Duration | None = setting(
        None,
        "this pair's expiry horizon",
        shown="`replication.expiry_horizon`",
    )
    hide_names: Flag = setting(
        False,
        "status and dashboard show `sha256:<12 hex digits>` of each name instead of the name "
        "in the expiry list, the deletion guard's withheld list and each target's pending items "
        "(a promotion's loss report then names those items by the same digest)",
    )


def read_pairs(
    raw: object,
    regions: dict[str, VaultRef],
    declared: set[str],
    default_rpo: float,
    problems: Problems,
) -> tuple[PairSettings, ...]:
    """Every valid pair; `regions` are the valid regions, `declared` all region names."""
    path: KeyPath = ("pairs",)
    if raw is None:
        problems.error(path, "no [[pairs]]: add at least one pair (primary and secondaries)")
        return ()
    if not isinstance(raw, list):
        problems.error(path, "expected an array of tables: write each pair as [[pairs]]")
        return ()
    if not raw:
        problems.error(path, "no pairs: add at least one [[pairs]] table")
    pairs: list[tuple[int, PairSettings]] = []
    names: list[tuple[int, str]] = []
    for index, body in enumerate(raw):
        where = (*path, index)
        pair = _read_pair(body, where, regions, declared, default_rpo, problems)
        if pair is not None:
            pairs.append((index, pair))
        if isinstance(body, dict) and not problems.errors_under((*where, "name")):
            name = body.get("name")
            if isinstance(name, str):
                names.append((index, name))
    _check_unique_names(names, problems)
    _check_overlaps(pairs, problems)
    return tuple(pair for _, pair in pairs)


def _read_pair(
    raw: object,
    path: KeyPath,
    regions: dict[str, VaultRef],
    declared: set[str],
    default_rpo: float,
    problems: Problems,
) -> PairSettings | None:
    pair = read_section(PairSection, raw, path, problems)
    if not isinstance(raw, dict):
        return None
    # The regions are checked on what is written, whatever else is wrong with the pair.
    primary = raw.get("primary")
    if isinstance(primary, str) and primary.strip() and primary not in declared:
        _unknown_region(primary, (*path, "primary"), declared, problems)
    secondaries = raw.get("secondaries")
    if isinstance(secondaries, list) and not problems.errors_under((*path, "secondaries")):
        if not secondaries:
            problems.error((*path, "secondaries"), "must name at least one secondary region")
        seen: set[str] = set()
        for index, region in enumerate(secondaries):
            where = (*path, "secondaries", index)
            if region == primary:
                problems.error(where, f"region {region!r} is the pair's primary")
            elif region in seen:
                problems.error(where, f"region {region!r} is listed twice")
            elif region not in declared:
                _unknown_region(region, where, declared, problems)
            seen.add(region)
    if pair is None:
        return None
    if pair.include == ():
        problems.error((*path, "include"), "is empty, so the pair selects nothing")
    for key, patterns in (("include", pair.include), ("exclude", pair.exclude)):
        for index, pattern in enumerate(patterns):
            if not _NAME_OR_GLOB.fullmatch(pattern):
                problems.warning(
                    (*path, key, index),
                    f"{pattern!r} can never match: Key Vault names are letters, digits and '-'",
                )
    if problems.errors_under(path):
        return None
    if pair.primary not in regions or any(region not in regions for region in pair.secondaries):
        # A region with an invalid vault_url: reported at the region.
        return None
    return build(
        PairSettings,
        pair,
        primary=regions[pair.primary],
        secondaries=tuple(regions[region] for region in pair.secondaries),
        rpo_objective_seconds=(
            default_rpo if pair.rpo_objective_seconds is None else pair.rpo_objective_seconds
        ),
    )


def _unknown_region(name: str, where: KeyPath, declared: set[str], problems: Problems) -> None:
    known = ", ".join(sorted(declared)) or "none are defined"
    problems.error(where, f"unknown region {name!r}{suggest(name, declared)} (regions: {known})")


def _check_unique_names(names: list[tuple[int, str]], problems: Problems) -> None:
    # Pair names become blob paths and metric labels: unique regardless of case.
    first: dict[str, int] = {}
    for index, name in names:
        folded = name.lower()
        if folded in first:
            problems.error(
                ("pairs", index, "name"),
                f"pair name {name!r} is already used by pairs[{first[folded]}]",
            )
        else:
            first[folded] = index


def _check_overlaps(pairs: list[tuple[int, PairSettings]], problems: Problems) -> None:
    for position, (i, a) in enumerate(pairs):
        for j, b in pairs[position + 1 :]:
            if not a.kinds & b.kinds:
                continue
            shared_targets = {s.region for s in a.secondaries} & {s.region for s in b.secondaries}
            if a.primary.region == b.primary.region:
                reason = f"the same primary {a.primary.region!r}"
            elif shared_targets:
                reason = f"the same secondary {sorted(shared_targets)[0]!r}"
            else:
                continue
            example = overlap_example(a, b)
            where: KeyPath = ("pairs", j)
            if example is not None:
                problems.error(
                    where,
                    f"selects the same items as pairs[{i}] ({a.name!r}) with {reason}, for "
                    f"example {example!r}; split them with include/exclude",
                )
            elif "*" in a.include and "*" in b.include:
                problems.warning(
                    where,
                    f"both this pair and pairs[{i}] ({a.name!r}) include '*' with {reason}; "
                    "check that their exclude globs split the items",
                )


def overlap_example(a: PairSettings, b: PairSettings) -> str | None:
    """A name both pairs select, found among examples of their include patterns."""
    for name in _examples(a.include) + _examples(b.include):
        if _VAULT_NAME.fullmatch(name) and a.selects(name) and b.selects(name):
            return name
    return None


def _examples(patterns: Sequence[str]) -> list[str]:
    """Names that a pattern matches, with `*` filled in a few different ways."""
    return [_instantiate(p, filler) for p in patterns for filler in ("x", "", "kvdr-example-0")]


# A class may hold `]` as its first member (`[]a]`); a `[` without a closing `]` is literal.
_WILDCARD = re.compile(r"\*|\?|\[.[^\]]*\]")


def _instantiate(pattern: str, filler: str) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group()
        return filler if token == "*" else "x" if token == "?" else _class_member(token[1:-1])

    return _WILDCARD.sub(one, pattern)


def _class_member(members: str) -> str:
    """One character that the class `[members]` matches."""
    for candidate in "xa0-yzbq123456789ABCXYZ_":
        if fnmatch.fnmatchcase(candidate, f"[{members}]"):
            return candidate
    return "x"
