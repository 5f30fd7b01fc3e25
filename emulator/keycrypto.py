"""Key operations: encrypt, decrypt, sign, verify, wrapkey, unwrapkey, `/rng`, and the 501s.

Before an operation runs, Key Vault's gates apply in its order: the key version exists,
the key's transaction budget (by type and size), enabled, the operation is in the key's
`key_ops` (403 KeyOperationForbidden), and for encrypt, wrapKey and sign the key's
`nbf`/`exp` window (decrypt, unwrapKey and verify keep working after expiry so old
data stays readable, as the SDK's own local checks assume). Bad input from the client
(algorithm, lengths, base64) is 400 BadParameter naming the field; failures never say
more than "failed", so errors are no decryption oracle and carry no material.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.errors import KeyVaultError, bad_parameter, not_implemented
from emulator.keydocs import (
    key_path,
    load_charged,
    material_of,
)
from emulator.keymaterial import KeyMaterialError, b64url_decode, b64url_encode, random_bytes
from emulator.objects import check_name, object_url, read_json
from emulator.state import VaultState, vault_state
from emulator.store import StoredVersion

# URL segment -> the key_ops entry that allows it.
OPERATIONS = {
    "encrypt": "encrypt",
    "decrypt": "decrypt",
    "sign": "sign",
    "verify": "verify",
    "wrapkey": "wrapKey",
    "unwrapkey": "unwrapKey",
}
# Operations that create new protected data: refused outside the key's nbf/exp window.
_TIME_BOUND = frozenset({"encrypt", "wrapKey", "sign"})


def _bytes(body: dict[str, Any], field: str, *, required: bool) -> bytes | None:
    value = body.get(field)
    if value is None:
        if required:
            raise bad_parameter(f"{field} is required (base64url).")
        return None
    try:
        return b64url_decode(value, field)
    except KeyMaterialError as exc:
        raise bad_parameter(str(exc)) from None


def _algorithm(body: dict[str, Any]) -> str:
    alg = body.get("alg")
    if not isinstance(alg, str) or not alg:
        raise bad_parameter("alg is required: the algorithm to use with the key.")
    return alg


def _gate(state: VaultState, stored: StoredVersion, operation: str) -> None:
    """Enabled, allowed by key_ops, and (for new protected data) within nbf/exp."""
    attributes = stored.doc.get("attributes") or {}
    if not attributes.get("enabled", True):
        raise KeyVaultError(
            403,
            "Forbidden",
            f"Operation {operation} is not allowed on a disabled key.",
            "KeyDisabled",
        )
    if operation not in (stored.doc.get("key_ops") or []):
        raise KeyVaultError(
            403,
            "Forbidden",
            f"Operation {operation} is not permitted on this key.",
            "KeyOperationForbidden",
        )
    if operation in _TIME_BOUND:
        now = state.now()
        nbf, exp = attributes.get("nbf"), attributes.get("exp")
        if nbf is not None and now < nbf:
            raise KeyVaultError(
                403,
                "Forbidden",
                f"Operation {operation} is not allowed: the key is not yet "
                "valid (attributes.nbf is in the future).",
                "KeyNotYetValid",
            )
        if exp is not None and now >= exp:
            raise KeyVaultError(
                403,
                "Forbidden",
                f"Operation {operation} is not allowed: the key has expired "
                "(attributes.exp has passed).",
                "KeyExpired",
            )


def _run(
    stored: StoredVersion, operation: str, algorithm: str, body: dict[str, Any]
) -> dict[str, Any]:
    material = material_of(stored)
    if operation == "encrypt":
        out = material.encrypt(
            algorithm,
            _bytes(body, "value", required=True) or b"",
            iv=_bytes(body, "iv", required=False),
            aad=_bytes(body, "aad", required=False),
        )
        result = {"value": b64url_encode(out.ciphertext)}
        for field, extra in (("iv", out.iv), ("tag", out.tag), ("aad", out.aad)):
            if extra is not None:
                result[field] = b64url_encode(extra)
        return result
    if operation == "decrypt":
        plain = material.decrypt(
            algorithm,
            _bytes(body, "value", required=True) or b"",
            iv=_bytes(body, "iv", required=False),
            tag=_bytes(body, "tag", required=False),
            aad=_bytes(body, "aad", required=False),
        )
        return {"value": b64url_encode(plain)}
    if operation == "wrapKey":
        wrapped = material.wrap_key(algorithm, _bytes(body, "value", required=True) or b"")
        return {"value": b64url_encode(wrapped)}
    if operation == "unwrapKey":
        unwrapped = material.unwrap_key(algorithm, _bytes(body, "value", required=True) or b"")
        return {"value": b64url_encode(unwrapped)}
    if operation == "sign":
        signature = material.sign(algorithm, _bytes(body, "value", required=True) or b"")
        return {"value": b64url_encode(signature)}
    valid = material.verify(
        algorithm,
        _bytes(body, "digest", required=True) or b"",
        _bytes(body, "value", required=True) or b"",
    )
    return {"value": valid}


def _handler(segment: str) -> Any:
    operation = OPERATIONS[segment]

    async def handle(request: web.Request) -> web.Response:
        state = vault_state(request)
        name = check_name(request.match_info["name"])
        version = request.match_info.get("version", "")
        body = await read_json(request)
        stored = load_charged(state, name, version)
        _gate(state, stored, operation)
        algorithm = _algorithm(body)
        try:
            result = _run(stored, operation, algorithm, body)
        except KeyMaterialError as exc:
            raise bad_parameter(str(exc)) from None
        if operation != "verify":
            path = key_path(stored.name, stored.version)
            result = {"kid": object_url(state, request, path), **result}
        return web.json_response(result)

    handle.__doc__ = f"POST /keys/{{name}}/{{version}}/{segment}."
    return handle


async def get_random_bytes(request: web.Request) -> web.Response:
    """POST /rng: {"count": n} -> n random bytes (1-128)."""
    body = await read_json(request)
    count = body.get("count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise bad_parameter("count is required: the number of random bytes, 1 to 128.")
    try:
        value = random_bytes(count)
    except KeyMaterialError as exc:
        raise bad_parameter(str(exc)) from None
    return web.json_response({"value": b64url_encode(value)})


async def release_key(request: web.Request) -> web.Response:
    """POST /keys/{name}/{version}/release: 501 (no attestation service to check against)."""
    raise not_implemented("release (secure key release needs an attestation service)")


async def get_key_attestation(request: web.Request) -> web.Response:
    """GET /keys/{name}/{version}/attestation: 501 (no HSM to attest)."""
    raise not_implemented("get_key_attestation (there is no HSM to attest keys)")


def routes() -> list[web.RouteDef]:
    """Operation routes; each also under `/keys/{name}//op` (no version: the latest)."""
    defs: list[web.RouteDef] = []
    names = {
        "encrypt": "Encrypt",
        "decrypt": "Decrypt",
        "sign": "Sign",
        "verify": "Verify",
        "wrapkey": "WrapKey",
        "unwrapkey": "UnwrapKey",
    }
    for segment, title in names.items():
        handle = _handler(segment)
        defs.append(web.post(f"/keys/{{name}}/{{version}}/{segment}", handle, name=title))
        defs.append(web.post(f"/keys/{{name}}//{segment}", handle, name=f"{title}:latest"))
    defs += [
        web.post("/keys/{name}/{version}/release", release_key, name="Release"),
        web.post("/keys/{name}//release", release_key, name="Release:latest"),
        web.get(
            "/keys/{name}/{version}/attestation", get_key_attestation, name="GetKeyAttestation"
        ),
        web.get("/keys/{name}//attestation", get_key_attestation, name="GetKeyAttestation:latest"),
        web.post("/rng", get_random_bytes, name="GetRandomBytes"),
    ]
    return defs
