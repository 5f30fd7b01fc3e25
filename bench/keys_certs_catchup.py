"""A new secondary catches up with a vault of secrets, keys and certificates, both vaults
throttling like Azure: time, items per second, and the share of the binding budget.

Run from the repository root: `python -m bench.keys_certs_catchup [--secrets 500]
[--keys 100] [--certificates 50] [--throttle azure|off]`.

Seeding: the primary is started without throttling and seeded through the SDK (keys
RSA-2048 and EC P-256, every fifth with a second version; self-signed RSA-2048
certificates), then restarted on the same state folder with `--throttle azure`, so no
window of its budget is spent when kvdr starts. The secondary is a fresh emulator with
the same `--throttle`.

kvdr runs one initial sync with default settings (`load()`, `reconcile()`, `flush()`) of
a pair with all three kinds. Afterwards the secondary's request counts (its management
API) are split into Key Vault's budgets: secret creates (300 per 10 s) and everything
else (4,000 per 10 s; key operations have budgets of their own at least that large for
these key types, so counting them here only makes the bound stricter). For each budget
the least time Azure's sliding 10 s window allows for that many requests is
`10 s x (ceil(n / limit) - 1)`; the largest is the binding bound. Reported: catch-up time,
items per second, and bound / time, the share of the binding budget kvdr achieved
(target: at least 80%). Everything is verified: counts per kind on the secondary, key and
certificate version ids, and a sample of secret values.

The emulator does real work per request on one core (restoring an RSA key validates
each version's private key, tens of milliseconds on a small machine), so on a slow or
busy machine the secondary emulator itself can be slower than Azure's budget. A second
catch-up with `--throttle off` on both vaults (unless `--no-compare`) measures what the
machine allows; the share is then also given against the larger of the two bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from azure.keyvault.certificates import CertificatePolicy

from bench._report import at_least, header, table
from bench._world import BenchStack, op_count, open_world, sample_mismatches, seed_secrets
from replicator.pair import SyncReport
from tests.fixtures.emulator import EmulatorProcess, aio_certificate_client, aio_key_client
from vault.models import ItemKind

# `python -m bench` (quick mode): a small vault, no second catch-up.
QUICK_ARGS = ["--secrets", "100", "--keys", "20", "--certificates", "10", "--no-compare"]

WINDOW_SECONDS = 10.0
SECRET_CREATES_PER_10S = 300
OTHER_OPS_PER_10S = 4000
TARGET_SHARE = 0.80
SEED_CONCURRENCY = 16
VERIFY_SAMPLE = 50


def window_bound(requests: int, limit: int) -> float:
    """Least seconds a sliding window of `limit` per 10 s needs for `requests` (pure):
    the first `limit` at once, each further `limit` one window later."""
    if requests <= 0:
        return 0.0
    return WINDOW_SECONDS * (math.ceil(requests / limit) - 1)


@dataclass
class Catchup:
    """What one catch-up achieved on a fresh secondary."""

    seconds: float = math.nan
    report: SyncReport = field(default_factory=SyncReport)
    by_kind: dict[str, int] = field(default_factory=dict)
    secret_creates: int = 0
    other_requests: int = 0
    throttled_primary: int = 0
    throttled_secondary: int = 0
    version_mismatches: int = 0
    value_mismatches: int = 0

    @property
    def bounds(self) -> dict[str, float]:
        return {
            "secret creates (300 / 10 s)": window_bound(
                self.secret_creates, SECRET_CREATES_PER_10S
            ),
            "other requests (4,000 / 10 s)": window_bound(self.other_requests, OTHER_OPS_PER_10S),
        }

    @property
    def binding(self) -> tuple[str, float]:
        return max(self.bounds.items(), key=lambda kv: kv[1])


def key_names(count: int) -> list[str]:
    return [f"bench-key-{i:04d}" for i in range(count)]


def certificate_names(count: int) -> list[str]:
    return [f"bench-cert-{i:04d}" for i in range(count)]


async def seed_keys(emu: EmulatorProcess, names: list[str]) -> None:
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    async with aio_key_client(emu) as keys:

        async def one(index: int, name: str) -> None:
            async with gate:
                for _ in range(2 if index % 5 == 0 else 1):
                    if index % 10 < 7:
                        await keys.create_rsa_key(name, size=2048)
                    else:
                        await keys.create_ec_key(name, curve="P-256")

        await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))


async def seed_certificates(emu: EmulatorProcess, names: list[str]) -> None:
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    async with aio_certificate_client(emu) as certs:

        async def one(name: str) -> None:
            async with gate:
                policy = CertificatePolicy(
                    "Self", subject=f"CN={name}.example.com", validity_in_months=12
                )
                await certs.create_certificate(name, policy)

        await asyncio.gather(*(one(n) for n in names))


async def seed(emu: EmulatorProcess, secrets: int, keys: int, certificates: int) -> None:
    await asyncio.gather(
        seed_secrets(emu, [f"bench-secret-{i:05d}" for i in range(secrets)]),
        seed_keys(emu, key_names(keys)),
        seed_certificates(emu, certificate_names(certificates)),
    )


async def catch_up(
    stack: BenchStack, primary: EmulatorProcess, secondary: EmulatorProcess, result: Catchup
) -> None:
    async with open_world(stack, {"eastus": primary, "westus": secondary}) as world:
        kinds = frozenset({ItemKind.SECRET, ItemKind.KEY, ItemKind.CERTIFICATE})
        replicator = world.replicator(world.pair(kinds=kinds))
        started = time.perf_counter()
        await replicator.load()
        result.report = await replicator.reconcile()
        await replicator.flush()
        result.seconds = time.perf_counter() - started

        east, west = world.vaults["eastus"], world.vaults["westus"]
        for kind in ItemKind:
            listed = await west.list_items(kind)
            result.by_kind[kind.value] = sum(1 for p in listed if not p.managed)
        for kind in (ItemKind.KEY, ItemKind.CERTIFICATE):
            for item in await east.list_items(kind):
                if item.managed:
                    continue
                source = [v.version for v in await east.list_versions(kind, item.name)]
                target = [v.version for v in await west.list_versions(kind, item.name)]
                result.version_mismatches += source != target
        secrets = [p.name for p in await west.list_items(ItemKind.SECRET) if not p.managed]
        bad = await sample_mismatches(east, west, secrets, VERIFY_SAMPLE)
        result.value_mismatches = len(bad)


def measure(stack: BenchStack, primary: EmulatorProcess, throttle: str) -> Catchup:
    """One catch-up of a fresh secondary, both vaults restarted with `throttle`."""
    result = Catchup()
    primary.throttle = throttle
    # A restart also starts the primary's budget windows (and its caches) afresh.
    primary.restart()
    secondary = stack.emulator("westus", throttle=throttle)
    primary.reset_stats()
    asyncio.run(catch_up(stack, primary, secondary, result))
    stats = secondary.stats()
    result.secret_creates = op_count(stats, "SetSecret")
    result.other_requests = int(stats["total"]) - result.secret_creates
    result.throttled_secondary = int(stats.get("by_status", {}).get("429", 0))
    result.throttled_primary = int(primary.stats().get("by_status", {}).get("429", 0))
    stack.stop(secondary)
    print(f"  catch-up with --throttle {throttle}: {result.seconds:.1f} s", flush=True)
    return result


def run(args: argparse.Namespace) -> tuple[Catchup, Catchup | None]:
    with BenchStack() as stack:
        primary = stack.emulator("eastus")
        started = time.perf_counter()
        asyncio.run(seed(primary, args.secrets, args.keys, args.certificates))
        print(
            f"seeded {args.secrets} secrets, {args.keys} keys and {args.certificates} "
            f"certificates in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        result = measure(stack, primary, args.throttle)
        machine = None if args.no_compare else measure(stack, primary, "off")
    return result, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=500, help="secrets (default 500)")
    parser.add_argument("--keys", type=int, default=100, help="keys (default 100)")
    parser.add_argument("--certificates", type=int, default=50, help="certificates (default 50)")
    parser.add_argument(
        "--throttle", choices=("azure", "off"), default="azure", help="emulator throttling"
    )
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the second catch-up without throttling (what the machine allows)",
    )
    args = parser.parse_args()
    for option in ("secrets", "keys", "certificates"):
        if getattr(args, option) < 0:
            parser.error(f"--{option}: {getattr(args, option)} must be 0 or more")

    result, machine = run(args)
    items = args.secrets + args.keys + args.certificates
    binding, bound = result.binding
    share = bound / result.seconds if result.seconds > 0 else math.nan
    machine_bound = max(bound, machine.seconds) if machine is not None else math.nan
    print()
    print(
        header(
            f"new secondary catches up: {args.secrets} secrets, {args.keys} keys, "
            f"{args.certificates} certificates, --throttle {args.throttle}"
        )
    )
    rows: list[Sequence[object]] = [
        ["catch-up time (load + reconcile + flush)", f"{result.seconds:.1f} s"],
        ["items per second", f"{items / result.seconds:.1f}"],
        [
            "secondary requests: secret creates / other",
            f"{result.secret_creates} / {result.other_requests}",
        ],
        *(
            [f"  least time Azure allows: {name}", f"{b:.1f} s"]
            for name, b in result.bounds.items()
        ),
        ["binding budget", binding],
        [
            "items per second the binding budget allows",
            (f"{items / bound:.1f}" if bound > 0 else "unbounded"),
        ],
        ["share of the binding budget (bound / time)", f"{share:.1%}" if bound > 0 else "n/a"],
        [
            "same catch-up with --throttle off (what this machine allows)",
            f"{machine.seconds:.1f} s" if machine is not None else "not run",
        ],
        [
            "share of max(budget bound, unthrottled time)",
            f"{machine_bound / result.seconds:.1%}" if machine is not None else "not run",
        ],
        ["429s: primary / secondary", f"{result.throttled_primary} / {result.throttled_secondary}"],
        [
            "on the secondary: secrets / keys / certificates",
            f"{result.by_kind.get('secret', 0)} / {result.by_kind.get('key', 0)} / "
            f"{result.by_kind.get('certificate', 0)}",
        ],
        ["key and certificate version lists that differ", result.version_mismatches],
        [
            "sample secret values compared / mismatched",
            f"{VERIFY_SAMPLE} / {result.value_mismatches}",
        ],
        [
            "report: copied / updated / errors / blocked",
            f"{result.report.copied} / {result.report.updated} / {result.report.errors} / "
            f"{result.report.blocked}",
        ],
    ]
    print(table(["measure", "value"], rows))
    expected = (args.secrets, args.keys, args.certificates)
    got = tuple(result.by_kind.get(k, 0) for k in ("secret", "key", "certificate"))
    intact = got == expected and not result.version_mismatches and not result.value_mismatches
    if bound > 0:
        verdict = at_least(
            share * 100, TARGET_SHARE * 100, "%", figure="catch-up share of the binding budget"
        )
        print(f"share of the binding budget: {verdict}")
    if machine is not None and machine.seconds > bound:
        print(
            f"this machine is the tighter bound: the unthrottled catch-up took "
            f"{machine.seconds:.1f} s > {bound:.1f} s; against it: "
            f"{at_least(machine_bound / result.seconds * 100, TARGET_SHARE * 100, '%')}"
        )
    else:
        print("no budget binds at this size: every request fits in one 10 s window")
    print(f"everything arrived intact: {'yes' if intact else 'NO'}")


if __name__ == "__main__":
    main()
