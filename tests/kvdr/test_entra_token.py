"""Event Grid's Entra ID bearer tokens, checked without a network (kvdr/entra_token.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kvdr.entra_token import EntraDelivery, EntraVerifier, TokenRejected, load_keys
from tests.kvdr.test_http_surface import AUDIENCE, ISSUER, jwks, signed_token


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestEntraVerifier:
    def test_rotated_keys_are_read_again(self, tmp_path: Path) -> None:
        """A token of a key added to the file later is accepted once the file changes;
        a token of the removed key is refused from then on."""
        old, new = new_key(), new_key()
        keys = tmp_path / "keys.json"
        keys.write_text(jwks(old, "old"))
        verifier = EntraVerifier(EntraDelivery(AUDIENCE, (ISSUER,), keys))
        assert verifier.verify(signed_token(old, "old"))["aud"] == AUDIENCE
        with pytest.raises(TokenRejected, match="not configured"):
            verifier.verify(signed_token(new, "new"))
        keys.write_text(jwks(new, "new"))
        later = time.time() + 5
        os.utime(keys, (later, later))
        assert verifier.verify(signed_token(new, "new"))["iss"] == ISSUER
        with pytest.raises(TokenRejected):
            verifier.verify(signed_token(old, "old"))

    def test_validity_window_with_skew(self, tmp_path: Path) -> None:
        """Five minutes of clock skew either way; beyond it, expired or not valid yet.
        Messages never contain the token."""
        key = new_key()
        keys = tmp_path / "keys.json"
        keys.write_text(jwks(key, "k"))
        now = [time.time()]
        verifier = EntraVerifier(EntraDelivery(AUDIENCE, (ISSUER,), keys), lambda: now[0])
        token = signed_token(key, "k", nbf=int(now[0]) + 200, exp=int(now[0]) + 600)
        verifier.verify(token)
        now[0] += 600 + 299
        verifier.verify(token)
        now[0] += 2
        with pytest.raises(TokenRejected, match="expired") as refused:
            verifier.verify(token)
        assert token not in str(refused.value)
        early = signed_token(key, "k", nbf=int(now[0]) + 400, exp=int(now[0]) + 900)
        with pytest.raises(TokenRejected, match="not valid yet"):
            verifier.verify(early)

    def test_garbage_is_refused_by_reason(self, tmp_path: Path) -> None:
        """Not a JWT, not base64, not JSON: each a TokenRejected; a key set without RSA
        keys is a configuration error naming the file."""
        key = new_key()
        keys = tmp_path / "keys.json"
        keys.write_text(jwks(key, "k"))
        verifier = EntraVerifier(EntraDelivery(AUDIENCE, (ISSUER,), keys))
        for junk in ("", "a.b", "!!.@@.##", "e30.e30.", "x" * 20000):
            with pytest.raises(TokenRejected):
                verifier.verify(junk)
        keys.write_text('{"keys": [{"kty": "EC", "kid": "e"}]}')
        with pytest.raises(ValueError, match="holds no RSA signing key"):
            load_keys(keys)
