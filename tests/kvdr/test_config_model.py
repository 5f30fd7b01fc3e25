"""Tables told apart by `kind` read through discriminated unions (kvdr/_config_model.py)."""

from __future__ import annotations

from kvdr._config_backups import SIGNER_KINDS, Kek, Signer, VaultKek
from kvdr._config_fields import Problems
from kvdr._config_model import read_kind
from kvdr._config_vaults import ClientSecretCredential, Credential, read_credential


def _found(problems: Problems) -> list[tuple[str, tuple[object, ...], str]]:
    return [(p.severity, p.path, p.message) for p in problems.items]


class TestCredentialUnion:
    def test_the_union_picks_the_model_of_the_kind(self) -> None:
        """The discriminated union validates a table as the model its kind names."""
        table = {"kind": "client-secret", "client_id": "c", "tenant_id": "t"}
        chosen = Credential.validate_python({**table, "client_secret_env": "S"})
        assert isinstance(chosen, ClientSecretCredential)
        assert Kek.validate_python({"kind": "vault", "region": "r", "key": "k"}) == VaultKek(
            region="r", key="k"
        )

    def test_an_unknown_kind_names_the_kinds(self) -> None:
        """A wrong kind is one error at `kind`, listing the kinds there are."""
        problems = Problems()
        read_credential({"kind": "password"}, {}, problems)
        [(severity, path, message)] = _found(problems)
        assert (severity, path) == ("error", ("credential", "kind"))
        assert message.startswith("'password' is not one of 'default', 'managed-identity'")

    def test_keys_of_another_kind_are_warnings_and_unknown_keys_errors(self) -> None:
        """A key another kind takes is not used (a warning); a key no kind takes is an error."""
        problems = Problems()
        settings = read_credential(
            {"kind": "managed-identity", "tenant_id": "t", "colour": "blue"}, {}, problems
        )
        assert settings.kind == "default"  # not built: the table has an error
        assert _found(problems) == [
            (
                "warning",
                ("credential", "tenant_id"),
                "not used by credential kind 'managed-identity'",
            ),
            ("error", ("credential", "colour"), "unknown key 'colour'"),
        ]

    def test_the_default_kind_needs_no_kind_key(self) -> None:
        """Without `kind` the credential is DefaultAzureCredential."""
        problems = Problems()
        settings = read_credential({"client_id": "c"}, {}, problems)
        assert (settings.kind, settings.client_id, problems.items) == ("default", "c", [])

    def test_a_literal_secret_is_refused_without_its_value(self) -> None:
        """client_secret is refused by name; the value appears nowhere."""
        problems = Problems()
        read_credential({"kind": "cli", "client_secret": "hunter2-hunter2"}, {}, problems)
        assert [p.path for p in problems.items] == [("credential", "client_secret")]
        assert "hunter2" not in problems.items[0].message


class TestSignerUnion:
    def test_a_missing_key_says_what_it_holds(self) -> None:
        """A required key of the chosen kind is reported with what belongs there."""
        problems = Problems()
        assert read_kind(Signer, SIGNER_KINDS, {"kind": "public"}, ("s",), problems) is None
        assert _found(problems) == [
            (
                "error",
                ("s", "public_key"),
                "missing required key 'public_key' (a PEM file with the signing key's public half)",
            )
        ]

    def test_a_kind_is_required(self) -> None:
        """A signer without `kind` is one error naming the kinds."""
        problems = Problems()
        read_kind(Signer, SIGNER_KINDS, {"path": "x"}, ("s",), problems)
        assert _found(problems) == [
            ("error", ("s", "kind"), "missing required key 'kind' (vault, file or public)")
        ]
