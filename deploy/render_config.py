"""Render kvdr's configuration file from the outputs of deploy/terraform or deploy/bicep.

    terraform -chdir=deploy/terraform output -json | python deploy/render_config.py - > kvdr.toml
    az deployment group show -g RG -n main --query properties.outputs \\
        | python deploy/render_config.py - > kvdr.toml

Both tools print `{"<output>": {"value": ...}, ...}`; the outputs carry no secret, and
neither does the file (managed identity, no keys). Check the result with
`kvdr config check kvdr.toml` before handing it to the daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

# The outputs this renderer reads; both IaC flavours declare each of them.
OUTPUTS = (
    "kvdr_credential",
    "kvdr_regions",
    "kvdr_storage",
    "kvdr_pair",
    "kvdr_backup_keks",
    "kvdr_control_stores",
)


class OutputsError(ValueError):
    """The outputs document lacks an output or a field this renderer needs."""


def _quote(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _array(values: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(v) for v in values) + "]"


def output_values(document: Mapping[str, Any]) -> dict[str, Any]:
    """The `value` of every output this renderer needs."""
    values: dict[str, Any] = {}
    for name in OUTPUTS:
        entry = document.get(name)
        if not isinstance(entry, dict) or "value" not in entry:
            raise OutputsError(f"output {name!r} is missing from the outputs document")
        values[name] = entry["value"]
    return values


def render(
    document: Mapping[str, Any],
    *,
    listen: str = "0.0.0.0:8080",
    state_dir: str = "/var/lib/kvdr",
    backups: bool = True,
    signing_key: str = "kvdr-backup-signing",
    signers_dir: str = "/etc/kvdr-signers",
    http_dir: str = "/etc/kvdr-http",
) -> str:
    """The TOML text of a configuration for the deployed resources."""
    out = output_values(document)
    credential, storage, pair = out["kvdr_credential"], out["kvdr_storage"], out["kvdr_pair"]
    regions: list[dict[str, str]] = list(out["kvdr_regions"])
    names = [r["region"] for r in regions]
    if pair["primary"] not in names:
        raise OutputsError(f"the pair's primary {pair['primary']!r} is not among {names}")
    lines = [
        "# Rendered by deploy/render_config.py from the infrastructure's outputs.",
        "[daemon]",
        f"listen = {_quote(listen)}",
        f"state_dir = {_quote(state_dir)}",
        'log_format = "json"',
        # A listener beyond loopback needs both (docs/security.md): files of a secret
        # the platform mounts (a Kubernetes Secret, or root-owned 0600 files on a VM).
        f"events_secret_file = {_quote(http_dir.rstrip('/') + '/events-secret')}",
        f"status_token_file = {_quote(http_dir.rstrip('/') + '/status-token')}",
        "",
        "[credential]",
        f"kind = {_quote(credential['kind'])}",
        f"client_id = {_quote(credential['client_id'])}",
    ]
    for region in regions:
        lines += [
            "",
            f"[regions.{region['region']}]",
            f"vault_url = {_quote(region['vault_url'].rstrip('/'))}",
            f"sku = {_quote(region['sku'])}",
        ]
    lines += [
        "",
        "[storage]",
        f"account_url = {_quote(storage['account_url'].rstrip('/'))}",
    ]
    if storage.get("secondary_account_url"):
        lines.append(
            f"secondary_account_url = {_quote(storage['secondary_account_url'].rstrip('/'))}"
        )
    lines.append(f"container = {_quote(storage['container'])}")
    if backups:
        lines += ["", "[backups]"]
        for kek in out["kvdr_backup_keks"]:
            lines += [
                "",
                "[[backups.keks]]",
                'kind = "vault"',
                f"region = {_quote(kek['region'])}",
                f"key = {_quote(kek['key'])}",
            ]
        # Each region's signing key signs; its public half is pinned from a PEM file.
        for kek in out["kvdr_backup_keks"]:
            lines += [
                "",
                "[[backups.signers]]",
                'kind = "vault"',
                f"region = {_quote(kek['region'])}",
                f"key = {_quote(signing_key)}",
                f"public_key = {_quote(signers_dir.rstrip('/') + '/' + kek['region'] + '.pem')}",
            ]
    lines += [
        "",
        "[replication]",
        "# Seals the checkpoints and deletion guards, which name every item.",
        f"state_key_file = {_quote(http_dir.rstrip('/') + '/state-key')}",
    ]
    secondaries = [n for n in names if n != pair["primary"]]
    lines += [
        "",
        "[[pairs]]",
        f"name = {_quote(pair['name'])}",
        f"primary = {_quote(pair['primary'])}",
        f"secondaries = {_array(secondaries)}",
        f"kinds = {_array(pair['kinds'])}",
    ]
    controls = out["kvdr_control_stores"]
    if controls:
        # Three control stores: the backup account and the two in regions of their own;
        # every transition needs two of them (docs/failover.md).
        lines += ["", "[failover]", 'store_timeout = "3s"']
        stores = [
            {"account_url": storage["account_url"], "container": storage["container"]},
            *controls,
        ]
        for store in stores:
            lines += [
                "",
                "[[failover.control_stores]]",
                f"account_url = {_quote(store['account_url'].rstrip('/'))}",
                f"container = {_quote(store['container'])}",
            ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outputs", help="the outputs JSON document, or - for stdin")
    parser.add_argument("--listen", default="0.0.0.0:8080", help="daemon.listen")
    parser.add_argument("--state-dir", default="/var/lib/kvdr", help="daemon.state_dir")
    parser.add_argument("--no-backups", action="store_true", help="leave [backups] out")
    parser.add_argument(
        "--signing-key", default="kvdr-backup-signing", help="each region's signing key name"
    )
    parser.add_argument(
        "--signers-dir",
        default="/etc/kvdr-signers",
        help="folder of the pinned signer public keys (<region>.pem)",
    )
    parser.add_argument(
        "--http-dir",
        default="/etc/kvdr-http",
        help="folder of the events-secret and status-token files",
    )
    args = parser.parse_args(argv)
    if args.outputs == "-":
        text = sys.stdin.read()
    else:
        with open(args.outputs, encoding="utf-8") as handle:
            text = handle.read()
    try:
        document = json.loads(text)
        sys.stdout.write(
            render(
                document,
                listen=args.listen,
                state_dir=args.state_dir,
                backups=not args.no_backups,
                signing_key=args.signing_key,
                signers_dir=args.signers_dir,
                http_dir=args.http_dir,
            )
        )
    except (OutputsError, json.JSONDecodeError, KeyError, TypeError) as exc:
        print(f"render_config: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
