"""Hostile input never raises anything but the error its reader promises: arbitrary
configuration files, scenario files, event deliveries, control records and drill
records (hypothesis). Each reader's error names what it read; none leaks a traceback to
a user or a crash to the daemon."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.scenario import ScenarioError, parse_scenario
from failover.control_record import ControlRecord, MalformedControlRecord
from kvdr._config_load import ConfigError, parse_config
from kvdr.drill_records import DrillRecord
from replicator.change_feed import DeliveryError, parse_delivery
from replicator.state_documents import read_document
from replicator.state_seal import StateDocumentUnreadable
from tests.fixtures.hostile import json_values as hostile_json

json_values = hostile_json()

# TOML built from the keys a reader knows, with values of any type, so the fuzzing
# reaches past "unknown key" into each key's own checks.
CONFIG_KEYS = {
    "daemon": ["listen", "instance_id", "log_format", "status_token_env"],
    "replication": ["poll_interval", "reconcile_interval", "rpo_objective", "lease_duration"],
    "failover": ["epoch_validity", "mode", "automatic_after", "require_approvals", "fence"],
    "storage": ["container", "connection_string", "retries", "connect_timeout"],
    "vault": ["max_attempts", "request_timeout", "ca_file"],
}
toml_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for section, keys in CONFIG_KEYS.items():
        if not draw(st.booleans()):
            continue
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys))):
            lines.append(f"{key} = {toml_value(draw(toml_scalars))}")
    return "\n".join(lines) + "\n"


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(config_texts() | st.text(max_size=200))
def test_configuration_files(text: str) -> None:
    try:
        parse_config(text, "fuzz.toml", env={})
    except ConfigError as exc:
        assert "fuzz.toml" in str(exc)


SCENARIO_KEYS = ["name", "description", "max_duration_seconds", "objectives", "load", "steps"]


@FUZZ
@given(
    st.dictionaries(st.sampled_from(SCENARIO_KEYS), toml_scalars, max_size=6).map(
        lambda d: "\n".join(f"{k} = {toml_value(v)}" for k, v in d.items())
    )
    | st.text(max_size=200)
)
def test_scenario_files(text: str) -> None:
    try:
        parse_scenario(text, "fuzz.toml")
    except ScenarioError as exc:
        assert str(exc)


@FUZZ
@given(json_values)
def test_event_deliveries(body: Any) -> None:
    try:
        delivery = parse_delivery(body)
    except DeliveryError:
        return
    for event in delivery.events:
        assert isinstance(event.name, str)


@FUZZ
@given(json_values | st.binary(max_size=200).map(lambda b: b))
def test_control_records(doc: Any) -> None:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    try:
        ControlRecord.from_json(data, "control/app.json")
    except MalformedControlRecord as exc:
        assert "control/app.json" in str(exc)


@FUZZ
@given(json_values)
def test_drill_records(doc: Any) -> None:
    try:
        read_document(DrillRecord, "drills/app/x.json", json.dumps(doc).encode(), "drill record")
    except StateDocumentUnreadable as exc:
        assert "drills/app/x.json" in str(exc)


DEEP = b"[" * 50_000 + b"]" * 50_000


def test_deeply_nested_documents_are_the_readers_errors() -> None:
    """JSON's parser recurses: nesting deeper than Python's stack is the reader's own
    error naming the blob, never a RecursionError reaching the daemon."""
    try:
        ControlRecord.from_json(DEEP, "control/app.json")
    except MalformedControlRecord as exc:
        assert "control/app.json" in str(exc)
    else:
        raise AssertionError("a nested array is not a control record")
    try:
        read_document(DrillRecord, "drills/app/x.json", DEEP, "drill record")
    except StateDocumentUnreadable as exc:
        assert "drills/app/x.json" in str(exc)
    else:
        raise AssertionError("a nested array is not a drill record")
