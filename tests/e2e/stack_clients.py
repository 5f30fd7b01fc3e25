"""What the local-stack tests share: the command line run in a folder, and a client of
one of the stack's vaults that trusts its CA bundle."""

from __future__ import annotations

import subprocess
from pathlib import Path

from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.secrets.aio import SecretClient

from tests.fixtures.cli import run_kvdr
from tests.fixtures.emulator import AsyncStaticTokenCredential


def kvdr(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_kvdr(*args, cwd=cwd, timeout=timeout)


def stack_secret_client(stack_dir: Path, port: int) -> SecretClient:
    return SecretClient(
        f"https://127.0.0.1:{port}",
        AsyncStaticTokenCredential(),
        verify_challenge_resource=False,
        connection_verify=str(stack_dir / "vaults" / "ca-bundle.pem"),
    )


def stack_certificate_client(stack_dir: Path, port: int) -> CertificateClient:
    return CertificateClient(
        f"https://127.0.0.1:{port}",
        AsyncStaticTokenCredential(),
        verify_challenge_resource=False,
        connection_verify=str(stack_dir / "vaults" / "ca-bundle.pem"),
    )
