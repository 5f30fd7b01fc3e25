"""Configuration sections declared as pydantic models, read into `Problems`.

A section is a `Section` model: one field per key (the key is the field's alias: its
name without `_seconds`, unless written out; the field's name is the settings
dataclass's, so `build` copies a section into its settings by name), its type a `Check`
over one of the value readers of kvdr/_config_fields.py, its default the settings
dataclass's own and its `description` the line docs/configuration.md shows
(`python -m kvdr.config_docs`). `read_section` validates one TOML table and records
every error at its key path, in kvdr's words: pydantic's messages carry the rejected
`input`, which may be a secret, so none of them is shown as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    Tag,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, core_schema

from kvdr._config_fields import (
    Converter,
    Invalid,
    Problems,
    boolean,
    choice,
    duration,
    env_name,
    fraction,
    suggest,
    text,
    type_name,
)
from kvdr._config_lines import KeyPath

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound="Section")
T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")
_ERROR_TYPE = "kvdr_value"


@dataclass(frozen=True)
class Check:
    """Field metadata: validate with `converter` (an `Invalid` becomes the error's
    message); `label` is the value's type as the key reference writes it."""

    converter: Converter[Any]
    label: str

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self._validate)

    def _validate(self, value: object) -> Any:
        try:
            return self.converter(value)
        except Invalid as exc:
            raise PydanticCustomError(
                _ERROR_TYPE, "{message}", {"message": str(exc), "at": exc.at}
            ) from None


Duration = Annotated[float, Check(duration(), "duration")]
# Zero allowed: "do not wait".
DurationOrZero = Annotated[float, Check(duration(positive=False), "duration")]
Fraction = Annotated[float, Check(fraction, "fraction")]
Flag = Annotated[bool, Check(boolean, "boolean")]
Text = Annotated[str, Check(text, "string")]
EnvName = Annotated[str, Check(env_name, "environment variable name")]


# The pydantic mypy plugin cannot see what the alias generator below returns, so it
# refuses it (here and at the first classmethod); the aliases are fixed, not dynamic.
class Section(BaseModel):  # type: ignore[pydantic-alias]
    """One table of the file: unknown keys are errors, values are read by `Check`s."""

    # A duration's field ends in `_seconds` (the settings' unit); the file writes the key
    # without it, as a duration string or number ("10s", 10). Other keys are the names.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=False,
        alias_generator=lambda name: name.removesuffix("_seconds"),
    )

    # The table's name in the file and in the key reference.
    section: ClassVar[str] = ""
    # Keys refused with a message of their own (a literal secret), never their value.
    refused: ClassVar[Mapping[str, str]] = {}
    # Appended verbatim to "missing required key 'k'": what the key holds.
    hints: ClassVar[Mapping[str, str]] = {}
    # Key reference: keys shown on one row with the first (`<key>_env` / `<key>_file`):
    # first key -> (separator, the others).
    joined: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # Key reference: keys with a table of their own (arrays of tables).
    elsewhere: ClassVar[frozenset[str]] = frozenset()

    @classmethod  # type: ignore[pydantic-alias]
    def written_keys(cls) -> list[str]:
        """The keys of the table, as written in the file."""
        return [info.alias or name for name, info in cls.model_fields.items()]


def setting(default: Any, doc: str, *, alias: str | None = None, shown: str | None = None) -> Any:
    """A field: its default, its line in the key reference (`doc`), the key as the file
    writes it when it differs from the settings' name (`alias`), and how the reference
    shows a default that is not a value (`shown`: "system trust")."""
    extra: dict[str, Any] = {"shown": shown} if shown is not None else {}
    return Field(default, alias=alias, description=doc, json_schema_extra=extra or None)


def tables(what: str, table: str) -> Check:
    """An array of tables, each read on its own later (one bad table does not hide the
    others)."""

    def check(value: object) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid(f"expected an array of tables: write each {what} as [[{table}]]")
        return value

    return Check(check, "array of tables")


def each(raw: object, path: KeyPath, read: Callable[[object, KeyPath], T | None]) -> list[T]:
    """`read` over each table of the array at `path` (not an array: reported by `tables`)."""
    if not isinstance(raw, list):
        return []
    found = (read(body, (*path, index)) for index, body in enumerate(raw))
    return [item for item in found if item is not None]


def build(settings: type[D], model: BaseModel, **given: Any) -> D:
    """The settings dataclass from the model's fields of the same names, `given` for the
    rest: one place copies a section into a part's settings, whose own checks then run."""
    names = {f.name for f in dataclasses.fields(settings)} & set(type(model).model_fields)
    return settings(**{name: getattr(model, name) for name in names - set(given)}, **given)


def read_section(model: type[S], raw: object, path: KeyPath, problems: Problems) -> S | None:
    """The table `raw` at `path` (absent: empty) as `model`, or None when it has errors
    (all of them recorded)."""
    table = {} if raw is None else raw
    result: S | None = _validate(model, model.model_validate, table, path, problems)
    return result


def _validate(
    model: type[Section],
    validate: Callable[[dict[str, Any]], Any],
    raw: object,
    path: KeyPath,
    problems: Problems,
    *,
    tagged: bool = False,
) -> Any:
    """`validate(raw)` with every error recorded at its key path in kvdr's words, the
    model's refused keys refused by name; None on errors. `tagged`: a union's errors
    carry the member's tag first."""
    if not isinstance(raw, dict):
        problems.error(path, f"expected a table, got {type_name(raw)}")
        return None
    table = dict(raw)
    for key in [key for key in table if key in model.refused]:
        problems.error((*path, key), model.refused[key])
        del table[key]
    try:
        return validate(table)
    except ValidationError as exc:
        # include_input only to name the type of a value that is not a table.
        for error in exc.errors(include_url=False):
            error["loc"] = tuple(error["loc"])[1 if tagged else 0 :]
            where, message = _translate(model, error)
            problems.error((*path, *where), message)
        return None


def _translate(model: type[Section], error: ErrorDetails) -> tuple[KeyPath, str]:
    """An error's key path and message, never its input."""
    loc: KeyPath = tuple(error["loc"])
    kind = error["type"]
    key = str(loc[-1]) if loc else ""
    if kind == _ERROR_TYPE:
        at = (error.get("ctx") or {}).get("at")
        return ((*loc, at) if isinstance(at, int) else loc), str(error["msg"])
    if kind == "extra_forbidden":
        return loc, f"unknown key {key!r}{suggest(key, model.written_keys())}"
    if kind == "missing":
        return loc, f"missing required key {key!r}{model.hints.get(key, '')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a table, got {type_name(error.get('input'))}"
    # Pydantic's own wording for the rest (its `msg` never quotes the input).
    return loc, str(error["msg"])


class KindSection(Section):
    """One member of a union of tables told apart by their `kind` (credentials, KEKs,
    signers): each kind's model declares its own keys."""


def read_kind(
    union: TypeAdapter[Any],
    models: Mapping[str, type[KindSection]],
    raw: object,
    path: KeyPath,
    problems: Problems,
    *,
    default: str | None = None,
    unused: str | None = None,
) -> Any:
    """The table at `path` through the discriminated `union` of `models` (by kind), or
    None when it has errors (all recorded).

    `kind` is checked first, so a wrong kind is one error naming the kinds there are.
    Without `default` the kind is required. With `unused`, keys that only other kinds
    take are warnings (`unused` names the family: "credential kind"), not errors.
    """
    if not isinstance(raw, dict):
        problems.error(path, f"expected a table, got {type_name(raw)}")
        return None
    kinds = tuple(models)
    if "kind" not in raw and default is None:
        problems.error((*path, "kind"), f"missing required key 'kind' ({_listed(kinds)})")
        return None
    try:
        kind = str(choice(kinds)(raw.get("kind", default)))
    except Invalid as exc:
        problems.error((*path, "kind"), str(exc))
        return None
    model = models[kind]
    table = dict(raw) if "kind" in raw else {**raw, "kind": kind}
    own = set(model.written_keys())
    if unused is not None:
        others = {key for m in models.values() for key in m.written_keys()} - own
        for key in sorted(others & set(table), key=list(table).index):
            problems.warning((*path, key), f"not used by {unused} {kind!r}")
            del table[key]
    return _validate(model, union.validate_python, table, path, problems, tagged=True)


def kind_union(*models: type[KindSection]) -> TypeAdapter[Any]:
    """A discriminated union of `models` on their `kind` field."""
    members = tuple(Annotated[m, Tag(kind_of(m))] for m in models)
    # Built at run time from the members, so typed Any for mypy.
    union: Any = Annotated[Union[members], Discriminator(_kind)]  # noqa: UP007
    return TypeAdapter(union)


def kind_of(model: type[KindSection]) -> str:
    """The `kind` a model declares (its `kind` field's only value)."""
    default = model.model_fields["kind"].default
    assert isinstance(default, str), model
    return default


def _kind(value: object) -> str | None:
    return str(value.get("kind")) if isinstance(value, dict) else None


def _listed(kinds: Sequence[str]) -> str:
    return ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
