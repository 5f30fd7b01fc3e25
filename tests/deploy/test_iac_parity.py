"""Terraform and Bicep declare the same resources, roles, inputs and outputs."""

from __future__ import annotations

from typing import Any

from tests.deploy import bicep
from tests.deploy.iac import (
    ARM_TYPES,
    bicep_file,
    bicep_role,
    camel,
    terraform,
    tf_object_keys,
)

# ARM resources that Terraform writes as a block of their parent resource.
BICEP_ONLY = {
    "storage_blob_service": "azurerm_storage_account.storage's blob_properties block",
}
# Terraform inputs without a Bicep parameter.
TERRAFORM_ONLY_VARIABLES = {
    "resource_group_name": "a Bicep deployment targets its group with `az deployment group -g`",
}


def _bicep_resources() -> dict[str, bicep.Declaration]:
    return bicep.of_kind(bicep_file(), "resource")


class TestResources:
    def test_same_resources_under_the_same_names(self) -> None:
        """Every Terraform resource has a Bicep resource of the same name and ARM type,
        and Bicep has nothing more than the listed structural children."""
        tf = {name: ARM_TYPES[rtype] for rtype, name in terraform().resources}
        assert len(tf) == len(terraform().resources), "resource names must be unique"
        bc = {n: d.type for n, d in _bicep_resources().items() if n not in BICEP_ONLY}
        assert tf == bc

    def test_bicep_only_children_exist(self) -> None:
        """The exceptions name real Bicep resources (a stale exception would hide one)."""
        assert set(BICEP_ONLY) <= set(_bicep_resources())

    def test_repetition_matches(self) -> None:
        """for_each is a Bicep loop, count a Bicep condition, and a single resource is
        single in both."""
        for (rtype, name), body in terraform().resources.items():
            declaration = _bicep_resources()[name]
            where = f"{rtype}.{name}"
            if "for_each" in body:
                assert declaration.looped, f"{where} uses for_each; Bicep {name} is no loop"
            elif "count" in body:
                assert declaration.conditional and not declaration.looped, where
            else:
                assert not declaration.looped and not declaration.conditional, where


class TestRoles:
    def test_same_role_for_every_assignment(self) -> None:
        """Each role assignment grants the same built-in role in both flavours."""
        tf = {
            name: body["role_definition_name"]
            for (rtype, name), body in terraform().resources.items()
            if rtype == "azurerm_role_assignment"
        }
        bc = {
            name: bicep_role(d.body)
            for name, d in _bicep_resources().items()
            if d.type == "Microsoft.Authorization/roleAssignments"
        }
        assert tf == bc
        assert len(tf) >= 9

    def test_conditions_on_kinds_match(self) -> None:
        """Key and certificate roles exist only when the pair mirrors those kinds, in both."""
        tf = terraform().resources
        crypto_tf = tf[("azurerm_role_assignment", "daemon_crypto_officer")]
        certificates_tf = tf[("azurerm_role_assignment", "daemon_certificates_officer")]
        assert "local.mirrors_keys ?" in crypto_tf["for_each"]
        assert "local.mirrors_certificates ?" in certificates_tf["for_each"]
        resources = _bicep_resources()
        crypto = resources["daemon_crypto_officer"].value
        certificates = resources["daemon_certificates_officer"].value
        assert isinstance(crypto, bicep.Loop) and crypto.condition == "mirrorsKeys"
        assert isinstance(certificates, bicep.Loop)
        assert certificates.condition == "mirrorsCertificates"


class TestInputsAndOutputs:
    def test_every_variable_is_a_parameter(self) -> None:
        """Each Terraform variable is a Bicep parameter of the camelCase name."""
        params = set(bicep.of_kind(bicep_file(), "param"))
        expected = {camel(v) for v in terraform().variables if v not in TERRAFORM_ONLY_VARIABLES}
        assert expected == params

    def test_sensitive_variables_are_secure_parameters(self) -> None:
        """A sensitive Terraform variable is an @secure() Bicep parameter and vice versa."""
        sensitive = {camel(n) for n, v in terraform().variables.items() if v.get("sensitive")}
        secure = {
            n
            for n, d in bicep.of_kind(bicep_file(), "param").items()
            if any(dec.startswith("secure(") for dec in d.decorators)
        }
        assert sensitive == secure == {"eventsSharedSecret"}

    def test_same_outputs_with_the_same_fields(self) -> None:
        """Outputs have the same names, and object outputs the same fields."""
        tf = terraform().outputs
        bc = bicep.of_kind(bicep_file(), "output")
        assert set(tf) == set(bc)
        for name, body in tf.items():
            bicep_value: Any = bc[name].body
            bicep_keys = list(bicep_value) if isinstance(bicep_value, dict) else []
            assert tf_object_keys(body["value"]) == bicep_keys, name

    def test_every_input_and_output_is_documented(self) -> None:
        """Each Terraform variable and output has a description, each Bicep parameter a
        @description."""
        for kind, items in (("variable", terraform().variables), ("output", terraform().outputs)):
            for name, body in items.items():
                assert len(body.get("description", "")) > 15, f"{kind} {name}"
        for name, param in bicep.of_kind(bicep_file(), "param").items():
            assert any(d.startswith("description(") for d in param.decorators), name
