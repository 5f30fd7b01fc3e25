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
# Outputs added later: a document without them (an older deployment) renders as before.
OPTIONAL_OUTPUTS = ("kvdr_fence",)
FENCE_ACTIONS = ("none", "azure-network-deny")
ENVIRONMENTS = ("drill", "staging", "production")


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
    for name in OPTIONAL_OUTPUTS:
        entry = document.get(name)
        if isinstance(entry, dict) and "value" in entry:
            values[name] = entry["value"]
    return values


def _fence_lines(
    fence: Mapping[str, Any] | None, regions: Sequence[Mapping[str, Any]]
) -> list[str]:
    """`fence` and `fence_allow_ips` of [failover] for the network fence (none: nothing)."""
    if not fence or fence.get("action", "none") == "none":
        return []
    action = fence["action"]
    if action not in FENCE_ACTIONS:
        raise OutputsError(f"output 'kvdr_fence': action {action!r} is not one of {FENCE_ACTIONS}")
    allow = list(fence.get("allow_ips") or [])
    if not allow:
        # A network fence that admits no kvdr address would lock kvdr out of the vault
        # it fences (docs/failover.md, "Fencing").
        raise OutputsError(
            "output 'kvdr_fence': allow_ips is empty; azure-network-deny needs kvdr's "
            "outbound addresses (fence_allow_ips)"
        )
    missing = [str(r["region"]) for r in regions if not r.get("resource_id")]
    if missing:
        raise OutputsError(
            f"output 'kvdr_regions': no resource_id for {missing}; azure-network-deny "
            "fences through each vault's management plane"
        )
    return [f"fence = {_quote(action)}", f"fence_allow_ips = {_array(allow)}"]


def render(
    document: Mapping[str, Any],
    *,
    listen: str = "0.0.0.0:8080",
    state_dir: str = "/var/lib/kvdr",
    backups: bool = True,
    signing_key: str = "kvdr-backup-signing",
    signers_dir: str = "/etc/kvdr-signers",
    http_dir: str = "/etc/kvdr-http",
    environment: str | None = None,
) -> str:
    """The TOML text of a configuration for the deployed resources."""
    out = output_values(document)
    if environment is not None and environment not in ENVIRONMENTS:
        raise OutputsError(f"environment {environment!r} is not one of {ENVIRONMENTS}")
    credential, storage, pair = out["kvdr_credential"], out["kvdr_storage"], out["kvdr_pair"]
    regions: list[dict[str, str]] = list(out["kvdr_regions"])
    names = [r["region"] for r in regions]
    if pair["primary"] not in names:
        raise OutputsError(f"the pair's primary {pair['primary']!r} is not among {names}")
    lines = ["# Rendered by deploy/render_config.py from the infrastructure's outputs."]
    if environment is not None:
        # What `kvdr drill run --stack config` may do here (docs/drills.md).
        lines += [f"environment = {_quote(environment)}", ""]
    lines += [
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
        if region.get("resource_id"):
            # The vault's ARM id: the management plane (fence, `kvdr failover check`).
            lines.append(f"resource_id = {_quote(region['resource_id'])}")
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
    fence = _fence_lines(out.get("kvdr_fence"), regions)
    if controls or fence:
        lines += ["", "[failover]", *fence]
    if controls:
        # Three control stores: the backup account and the two in regions of their own;
        # every transition needs two of them (docs/failover.md).
        lines.append('store_timeout = "3s"')
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
    parser.add_argument(
        "--environment",
        choices=ENVIRONMENTS,
        help="write `environment` (what `kvdr drill run --stack config` may do here)",
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
                environment=args.environment,
            )
        )
    except (OutputsError, json.JSONDecodeError, KeyError, TypeError) as exc:
        print(f"render_config: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
