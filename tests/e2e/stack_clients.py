"""What the local-stack tests share: the command line run in a folder, and a client of
one of the stack's vaults that trusts its CA bundle."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TypeVar

from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.secrets.aio import SecretClient

from tests.fixtures.cli import run_kvdr
from tests.fixtures.emulator import AsyncStaticTokenCredential

C = TypeVar("C", SecretClient, CertificateClient)


def kvdr(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, cwd=cwd, timeout=timeout)


def _stack_client(kind: type[C], stack_dir: Path, port: int) -> C:
    return kind(
        f"https://127.0.0.1:{port}",
        AsyncStaticTokenCredential(),
        verify_challenge_resource=False,
        connection_verify=str(stack_dir / "vaults" / "ca-bundle.pem"),
    )


def stack_secret_client(stack_dir: Path, port: int) -> SecretClient:
    return _stack_client(SecretClient, stack_dir, port)


def stack_certificate_client(stack_dir: Path, port: int) -> CertificateClient:
    return _stack_client(CertificateClient, stack_dir, port)
