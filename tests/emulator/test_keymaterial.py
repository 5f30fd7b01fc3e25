"""Key material of the emulator, checked directly and against the SDK's own local crypto."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from azure.keyvault.keys import JsonWebKey
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.keymaterial import (
    DEFAULT_KEY_OPS,
    KeyMaterial,
    KeyMaterialError,
    b64url_decode,
    b64url_encode,
    random_bytes,
)

DIGESTS = {
    "256": hashlib.sha256(b"kvdr").digest(),
    "384": hashlib.sha384(b"kvdr").digest(),
    "512": hashlib.sha512(b"kvdr").digest(),
}
CURVE_ALGORITHMS = {"P-256": "ES256", "P-256K": "ES256K", "P-384": "ES384", "P-521": "ES512"}
COORDINATE = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}
# Shared by the property tests: generating per example would dominate their runtime.
RSA_2048 = KeyMaterial.generate("RSA")
OCT_256 = KeyMaterial.generate("oct-HSM")


@pytest.fixture(scope="module")
def rsa_key() -> KeyMaterial:
    return KeyMaterial.generate("RSA")


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, KeyMaterial]:
    return {curve: KeyMaterial.generate("EC", curve=curve) for curve in CURVE_ALGORITHMS}


def sdk_local(jwk: dict[str, str], ops: tuple[str, ...]) -> CryptographyClient:
    """The SDK's own local crypto over a JWK: an independent implementation to agree with."""
    fields: dict[str, Any] = {
        k: b64url_decode(v, k) if k not in ("kty", "crv") else v for k, v in jwk.items()
    }
    return CryptographyClient.from_jwk(JsonWebKey(key_ops=list(ops), **fields))


def secrets_of(material: KeyMaterial) -> list[str]:
    jwk = material.private_jwk()
    return [jwk[f] for f in ("d", "p", "q", "dp", "dq", "qi", "k") if f in jwk]


class TestGeneration:
    """Key generation per type, size and curve."""

    def test_rsa_default_is_2048_with_exponent_65537(self, rsa_key: KeyMaterial) -> None:
        """An RSA key without a size is 2048 bits with e=65537, as in Key Vault."""
        assert (rsa_key.kty, rsa_key.key_size, rsa_key.public_exponent) == ("RSA", 2048, 65537)
        assert rsa_key.public_jwk()["e"] == "AQAB"

    def test_rsa_3072(self) -> None:
        """RSA 3072 is generated at the asked size."""
        assert KeyMaterial.generate("RSA-HSM", size=3072).key_size == 3072

    @pytest.mark.parametrize("curve", list(CURVE_ALGORITHMS))
    def test_ec_curves(self, ec_keys: dict[str, KeyMaterial], curve: str) -> None:
        """Every Key Vault curve, P-256K included, is generated and exported with padded x/y."""
        material = ec_keys[curve]
        jwk = material.public_jwk()
        assert (material.kty, material.curve, jwk["crv"]) == ("EC", curve, curve)
        assert len(b64url_decode(jwk["x"], "x")) == COORDINATE[curve]
        assert len(b64url_decode(jwk["y"], "y")) == COORDINATE[curve]

    @pytest.mark.parametrize("bits", [128, 192, 256])
    def test_oct_sizes(self, bits: int) -> None:
        """oct keys come in 128, 192 and 256 bits, and their public JWK carries no k."""
        material = KeyMaterial.generate("oct-HSM", size=bits)
        assert material.key_size == bits
        assert material.public_jwk() == {"kty": "oct"}

    def test_ec_defaults_to_p256(self) -> None:
        """An EC key without a curve uses P-256."""
        assert KeyMaterial.generate("EC").curve == "P-256"

    @pytest.mark.parametrize(
        ("kty", "kwargs", "names"),
        [
            ("RSA", {"size": 1024}, "1024"),
            ("RSA", {"public_exponent": 17}, "public_exponent"),
            ("EC", {"curve": "P-192"}, "P-192"),
            ("EC", {"size": 256}, "key_size"),
            ("oct", {"size": 512}, "512"),
            ("DSA", {}, "DSA"),
        ],
    )
    def test_bad_parameters_are_named(self, kty: str, kwargs: dict[str, Any], names: str) -> None:
        """A size, curve, exponent or type Key Vault refuses is refused with its name."""
        with pytest.raises(KeyMaterialError, match=names):
            KeyMaterial.generate(kty, **kwargs)

    @pytest.mark.parametrize("exponent", [3, 17, 257, 2**31 - 1])
    def test_managed_hsm_exponents(self, exponent: int) -> None:
        """With any_exponent (a Managed HSM) an RSA key gets any odd exponent asked for."""
        material = KeyMaterial.generate("RSA-HSM", public_exponent=exponent, any_exponent=True)
        assert (material.public_exponent, material.key_size) == (exponent, 2048)
        signature = material.sign("PS256", bytes(32))
        assert material.verify("PS256", bytes(32), signature)
        assert KeyMaterial.from_jwk(material.private_jwk()) == material

    @pytest.mark.parametrize("exponent", [1, 4, 65536, 2**31 + 1])
    def test_managed_hsm_bad_exponents(self, exponent: int) -> None:
        """Even exponents, 1, and exponents beyond int32 are refused naming public_exponent."""
        with pytest.raises(KeyMaterialError, match="public_exponent"):
            KeyMaterial.generate("RSA", public_exponent=exponent, any_exponent=True)

    def test_default_ops_per_type(self) -> None:
        """Default key_ops match what Key Vault lists per key type."""
        assert DEFAULT_KEY_OPS["EC"] == ("sign", "verify")
        assert set(DEFAULT_KEY_OPS["RSA"]) == {
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        }


class TestJwk:
    """JWK import and export."""

    def test_rsa_round_trip_with_crt(self, rsa_key: KeyMaterial) -> None:
        """A full private RSA JWK imports to the same key."""
        assert KeyMaterial.from_jwk(rsa_key.private_jwk()) == rsa_key

    def test_rsa_without_crt_parameters(self, rsa_key: KeyMaterial) -> None:
        """An RSA JWK with only n, e, d imports; the CRT parameters are recovered."""
        jwk = {k: v for k, v in rsa_key.private_jwk().items() if k in ("kty", "n", "e", "d")}
        assert KeyMaterial.from_jwk(jwk) == rsa_key

    def test_rsa_partial_crt_refused(self, rsa_key: KeyMaterial) -> None:
        """Some but not all CRT parameters is an error naming them."""
        jwk = rsa_key.private_jwk()
        del jwk["qi"]
        with pytest.raises(KeyMaterialError, match="CRT"):
            KeyMaterial.from_jwk(jwk)

    def test_rsa_inconsistent_refused_without_material(self, rsa_key: KeyMaterial) -> None:
        """A JWK whose d does not fit n is refused, and the message shows no key part."""
        other = KeyMaterial.generate("RSA")
        jwk = rsa_key.private_jwk()
        jwk["d"] = other.private_jwk()["d"]
        with pytest.raises(KeyMaterialError) as caught:
            KeyMaterial.from_jwk(jwk)
        for part in (*secrets_of(rsa_key), *secrets_of(other)):
            assert part not in str(caught.value)

    def test_trusted_material_round_trips_without_the_check(self, rsa_key: KeyMaterial) -> None:
        """Material the emulator wrote itself loads to the same key on the fast path."""
        assert KeyMaterial.from_jwk(rsa_key.private_jwk(), trusted=True) == rsa_key

    @pytest.mark.parametrize("curve", list(CURVE_ALGORITHMS))
    def test_ec_round_trip(self, ec_keys: dict[str, KeyMaterial], curve: str) -> None:
        """A private EC JWK imports to the same key on every curve."""
        assert KeyMaterial.from_jwk(ec_keys[curve].private_jwk()) == ec_keys[curve]

    def test_hsm_kty_and_legacy_curve_name(self, ec_keys: dict[str, KeyMaterial]) -> None:
        """EC-HSM JWKs import, and the 2016 spelling SECP256K1 means P-256K."""
        jwk = ec_keys["P-256K"].private_jwk() | {"kty": "EC-HSM", "crv": "SECP256K1"}
        assert KeyMaterial.from_jwk(jwk).curve == "P-256K"

    def test_ec_point_off_curve_refused(self, ec_keys: dict[str, KeyMaterial]) -> None:
        """x/y from another curve's key are refused naming the curve."""
        jwk = ec_keys["P-256"].private_jwk()
        jwk["x"] = ec_keys["P-256K"].public_jwk()["x"]
        with pytest.raises(KeyMaterialError, match="P-256"):
            KeyMaterial.from_jwk(jwk)

    def test_oct_round_trip(self) -> None:
        """An oct JWK imports to the same key."""
        material = KeyMaterial.generate("oct", size=192)
        assert KeyMaterial.from_jwk(material.private_jwk()) == material

    def test_public_only_refused(self, rsa_key: KeyMaterial) -> None:
        """Key Vault imports private keys only; a public JWK is refused naming d."""
        with pytest.raises(KeyMaterialError, match=r"key\.d"):
            KeyMaterial.from_jwk(rsa_key.public_jwk())

    def test_bad_base64_names_field(self, rsa_key: KeyMaterial) -> None:
        """A field that is not base64url is named in the error."""
        jwk = rsa_key.private_jwk() | {"n": "!!!"}
        with pytest.raises(KeyMaterialError, match=r"key\.n"):
            KeyMaterial.from_jwk(jwk)

    def test_bad_curve_named(self, ec_keys: dict[str, KeyMaterial]) -> None:
        """An unknown curve is named."""
        with pytest.raises(KeyMaterialError, match="P-999"):
            KeyMaterial.from_jwk(ec_keys["P-256"].private_jwk() | {"crv": "P-999"})

    def test_private_key_object_round_trip(self) -> None:
        """from_private_key/private_key hand the same cryptography key back and forth."""
        key = ec.generate_private_key(ec.SECP384R1())
        material = KeyMaterial.from_private_key(key)
        assert material.private_key() is key
        assert material.curve == "P-384"

    def test_oct_has_no_private_key_object(self) -> None:
        """An oct key cannot be handed out as an asymmetric key."""
        with pytest.raises(KeyMaterialError):
            KeyMaterial.generate("oct").private_key()

    def test_base64url_round_trip(self) -> None:
        """Our base64url has no padding and decodes padded or standard input too."""
        data = bytes(range(250))
        text = b64url_encode(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert b64url_decode(text, "v") == data
        assert b64url_decode(text + "==", "v") == data


class TestRsaOperations:
    """RSA encryption, wrapping and signatures."""

    @pytest.mark.parametrize("algorithm", ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"])
    def test_sdk_encrypts_we_decrypt(self, rsa_key: KeyMaterial, algorithm: str) -> None:
        """What the SDK encrypts locally with the public JWK, the material decrypts."""
        client = sdk_local(rsa_key.public_jwk(), DEFAULT_KEY_OPS["RSA"])
        result = client.encrypt(EncryptionAlgorithm(algorithm), b"attack at dawn")
        assert rsa_key.decrypt(algorithm, result.ciphertext) == b"attack at dawn"

    @pytest.mark.parametrize("algorithm", ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"])
    def test_we_wrap_sdk_unwraps(self, rsa_key: KeyMaterial, algorithm: str) -> None:
        """What the material wraps, the SDK unwraps locally with the private JWK."""
        cek = os.urandom(32)
        wrapped = rsa_key.wrap_key(algorithm, cek)
        client = sdk_local(rsa_key.private_jwk(), DEFAULT_KEY_OPS["RSA"])
        assert client.unwrap_key(KeyWrapAlgorithm(algorithm), wrapped).key == cek
        assert rsa_key.unwrap_key(algorithm, wrapped) == cek

    @pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
    def test_signatures_verify_in_sdk(self, rsa_key: KeyMaterial, algorithm: str) -> None:
        """Our RS*/PS* signatures verify in the SDK's local crypto and in ours."""
        digest = DIGESTS[algorithm[2:]]
        signature = rsa_key.sign(algorithm, digest)
        client = sdk_local(rsa_key.public_jwk(), DEFAULT_KEY_OPS["RSA"])
        assert client.verify(SignatureAlgorithm(algorithm), digest, signature).is_valid
        assert rsa_key.verify(algorithm, digest, signature)
        assert not rsa_key.verify(algorithm, digest[::-1], signature)

    def test_plaintext_too_long(self, rsa_key: KeyMaterial) -> None:
        """A plaintext over the RSA limit is an error naming the algorithm."""
        with pytest.raises(KeyMaterialError, match="RSA-OAEP-256"):
            rsa_key.encrypt("RSA-OAEP-256", b"x" * 300)

    def test_wrong_digest_length(self, rsa_key: KeyMaterial) -> None:
        """A digest of the wrong length for the algorithm is refused with both lengths."""
        with pytest.raises(KeyMaterialError, match="48 bytes for RS384, got 32"):
            rsa_key.sign("RS384", DIGESTS["256"])

    def test_unknown_algorithms(self, rsa_key: KeyMaterial) -> None:
        """Algorithms not for RSA are refused by name."""
        with pytest.raises(KeyMaterialError, match="A256GCM"):
            rsa_key.encrypt("A256GCM", b"x")
        with pytest.raises(KeyMaterialError, match="ES256"):
            rsa_key.sign("ES256", DIGESTS["256"])

    def test_bad_ciphertext(self, rsa_key: KeyMaterial) -> None:
        """Garbage ciphertext for OAEP fails with one uninformative error."""
        with pytest.raises(KeyMaterialError, match="decryption with RSA-OAEP failed"):
            rsa_key.decrypt("RSA-OAEP", os.urandom(256))


class TestEcOperations:
    """ECDSA with Key Vault's raw r||s signatures."""

    @pytest.mark.parametrize("curve", list(CURVE_ALGORITHMS))
    def test_raw_signature_verifies_independently(
        self, ec_keys: dict[str, KeyMaterial], curve: str
    ) -> None:
        """The signature is r||s of fixed width and verifies with plain cryptography and the SDK."""
        material = ec_keys[curve]
        algorithm = CURVE_ALGORITHMS[curve]
        digest = {
            "ES256": DIGESTS["256"],
            "ES256K": DIGESTS["256"],
            "ES384": DIGESTS["384"],
            "ES512": DIGESTS["512"],
        }[algorithm]
        signature = material.sign(algorithm, digest)
        width = COORDINATE[curve]
        assert len(signature) == 2 * width
        der = encode_dss_signature(
            int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
        )
        private = material.private_key()
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        hash_algorithm = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[
            len(digest)
        ]
        private.public_key().verify(der, digest, ec.ECDSA(Prehashed(hash_algorithm)))
        client = sdk_local(material.public_jwk(), ("sign", "verify"))
        assert client.verify(SignatureAlgorithm(algorithm), digest, signature).is_valid
        assert material.verify(algorithm, digest, signature)
        assert not material.verify(algorithm, digest, bytes(len(signature)))

    def test_algorithm_must_match_curve(self, ec_keys: dict[str, KeyMaterial]) -> None:
        """ES384 on a P-256 key is refused naming both."""
        with pytest.raises(KeyMaterialError, match=r"ES384.*P-384.*P-256"):
            ec_keys["P-256"].sign("ES384", DIGESTS["384"])

    def test_ec_cannot_encrypt(self, ec_keys: dict[str, KeyMaterial]) -> None:
        """EC keys do not encrypt or wrap."""
        with pytest.raises(KeyMaterialError, match="EC keys"):
            ec_keys["P-256"].encrypt("RSA-OAEP", b"x")
        with pytest.raises(KeyMaterialError, match="EC keys"):
            ec_keys["P-256"].wrap_key("A256KW", os.urandom(32))


class TestOctOperations:
    """AES-GCM, AES-CBC(PAD) and AES key wrap for Managed HSM oct keys."""

    @pytest.mark.parametrize("bits", [128, 192, 256])
    def test_gcm_round_trip_and_tamper(self, bits: int) -> None:
        """GCM generates a 12-byte IV and a tag; a changed tag or aad fails decryption."""
        material = KeyMaterial.generate("oct-HSM", size=bits)
        algorithm = f"A{bits}GCM"
        out = material.encrypt(algorithm, b"secret payload", aad=b"context")
        assert out.iv is not None and len(out.iv) == 12
        assert out.tag is not None and len(out.tag) == 16
        assert (
            material.decrypt(algorithm, out.ciphertext, iv=out.iv, tag=out.tag, aad=b"context")
            == b"secret payload"
        )
        with pytest.raises(KeyMaterialError, match="failed"):
            material.decrypt(algorithm, out.ciphertext, iv=out.iv, tag=bytes(16), aad=b"context")
        with pytest.raises(KeyMaterialError, match="failed"):
            material.decrypt(algorithm, out.ciphertext, iv=out.iv, tag=out.tag, aad=b"other")

    @pytest.mark.parametrize("bits", [128, 192, 256])
    def test_cbcpad_agrees_with_sdk(self, bits: int) -> None:
        """CBCPAD with a given IV produces what the SDK's local AES-CBC-PAD decrypts."""
        material = KeyMaterial.generate("oct-HSM", size=bits)
        iv = os.urandom(16)
        out = material.encrypt(f"A{bits}CBCPAD", b"odd length text", iv=iv)
        assert out.iv == iv
        client = sdk_local(material.private_jwk(), DEFAULT_KEY_OPS["oct"])
        plain = client.decrypt(EncryptionAlgorithm(f"A{bits}CBCPAD"), out.ciphertext, iv=iv)
        assert plain.plaintext == b"odd length text"

    def test_cbc_without_padding(self) -> None:
        """CBC zero-pads a partial block as Managed HSM does, and makes up a missing IV."""
        material = KeyMaterial.generate("oct-HSM", size=256)
        out = material.encrypt("A256CBC", b"0123456789abcdef")
        assert out.iv is not None
        assert material.decrypt("A256CBC", out.ciphertext, iv=out.iv) == b"0123456789abcdef"
        short = material.encrypt("A256CBC", b"short", iv=os.urandom(16))
        assert material.decrypt("A256CBC", short.ciphertext, iv=short.iv) == b"short" + bytes(11)

    def test_cbc_ignores_aad(self) -> None:
        """An aad given with CBC(PAD) is ignored: same ciphertext, nothing echoed back."""
        material = KeyMaterial.generate("oct-HSM", size=128)
        iv = os.urandom(16)
        for algorithm in ("A128CBC", "A128CBCPAD"):
            with_aad = material.encrypt(algorithm, b"x" * 16, iv=iv, aad=b"context")
            without = material.encrypt(algorithm, b"x" * 16, iv=iv)
            assert with_aad.ciphertext == without.ciphertext and with_aad.aad is None

    @pytest.mark.parametrize("bits", [128, 192, 256])
    def test_aes_kw_agrees_with_sdk(self, bits: int) -> None:
        """A*KW wraps what the SDK's local AES key wrap unwraps."""
        material = KeyMaterial.generate("oct-HSM", size=bits)
        cek = os.urandom(32)
        wrapped = material.wrap_key(f"A{bits}KW", cek)
        client = sdk_local(material.private_jwk(), DEFAULT_KEY_OPS["oct"])
        assert client.unwrap_key(KeyWrapAlgorithm(f"A{bits}KW"), wrapped).key == cek
        assert material.unwrap_key(f"A{bits}KW", wrapped) == cek

    def test_ckm_wrap_with_padding(self) -> None:
        """CKM_AES_KEY_WRAP_PAD wraps lengths that are not a multiple of 8."""
        material = KeyMaterial.generate("oct-HSM")
        wrapped = material.wrap_key("CKM_AES_KEY_WRAP_PAD", b"seventeen bytes!!")
        assert material.unwrap_key("CKM_AES_KEY_WRAP_PAD", wrapped) == b"seventeen bytes!!"

    def test_algorithm_size_must_match_key(self) -> None:
        """A256GCM on a 128-bit key is refused naming both sizes."""
        material = KeyMaterial.generate("oct-HSM", size=128)
        with pytest.raises(KeyMaterialError, match=r"256-bit.*128 bits"):
            material.encrypt("A256GCM", b"x")
        with pytest.raises(KeyMaterialError, match="256-bit"):
            material.wrap_key("A256KW", os.urandom(16))

    def test_unwrap_tampered(self) -> None:
        """A tampered wrapped key fails to unwrap."""
        material = KeyMaterial.generate("oct-HSM")
        wrapped = bytearray(material.wrap_key("A256KW", os.urandom(32)))
        wrapped[0] ^= 1
        with pytest.raises(KeyMaterialError, match="unwrapping with A256KW failed"):
            material.unwrap_key("A256KW", bytes(wrapped))


class TestSecrecy:
    """Key material never shows in repr or errors."""

    def test_repr_shows_type_only(self, rsa_key: KeyMaterial) -> None:
        """repr names kty and size and no JWK part."""
        assert repr(rsa_key) == "KeyMaterial(kty='RSA', size=2048)"
        oct_key = KeyMaterial.generate("oct")
        for material in (rsa_key, oct_key):
            for part in secrets_of(material):
                assert part not in repr(material)

    def test_cipher_output_repr_hides_bytes(self) -> None:
        """An encryption result's repr shows the length, not the bytes."""
        out = KeyMaterial.generate("oct").encrypt("A256GCM", b"plaintext")
        assert repr(out) == f"CipherOutput(ciphertext=<{len(out.ciphertext)} bytes>)"

    def test_equality_is_by_material(self, rsa_key: KeyMaterial) -> None:
        """Two materials compare equal only when their keys are equal."""
        assert rsa_key == KeyMaterial.from_private_key(rsa_key.private_key())  # type: ignore[arg-type]
        assert rsa_key != KeyMaterial.generate("EC")

    def test_invalid_type_to_constructor(self) -> None:
        """Anything but a key is refused."""
        with pytest.raises(KeyMaterialError):
            KeyMaterial(rsa.generate_private_key(65537, 1024))


class TestRandomBytes:
    """Random bytes as Managed HSM hands them out."""

    def test_count_and_bounds(self) -> None:
        """1-128 bytes are served; 0 and 129 are refused naming count."""
        assert len(random_bytes(1)) == 1
        assert len(random_bytes(128)) == 128
        for bad in (0, 129):
            with pytest.raises(KeyMaterialError, match="count"):
                random_bytes(bad)


class TestProperties:
    """Round trips hold for any input (hypothesis)."""

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_base64url_round_trip_any_bytes(self, data: bytes) -> None:
        """Any bytes survive b64url_encode/b64url_decode."""
        assert b64url_decode(b64url_encode(data), "v") == data

    @settings(max_examples=50, deadline=None)
    @given(plaintext=st.binary(max_size=200), aad=st.none() | st.binary(max_size=40))
    def test_aes_round_trips(self, plaintext: bytes, aad: bytes | None) -> None:
        """GCM (with any aad) and CBCPAD decrypt back to any plaintext."""
        material = OCT_256
        sealed = material.encrypt("A256GCM", plaintext, aad=aad)
        assert (
            material.decrypt("A256GCM", sealed.ciphertext, iv=sealed.iv, tag=sealed.tag, aad=aad)
            == plaintext
        )
        padded = material.encrypt("A256CBCPAD", plaintext)
        assert material.decrypt("A256CBCPAD", padded.ciphertext, iv=padded.iv) == plaintext

    @settings(max_examples=30, deadline=None)
    @given(st.binary(max_size=190))
    def test_rsa_oaep_round_trip(self, plaintext: bytes) -> None:
        """RSA-OAEP-256 decrypts back any plaintext up to its size limit."""
        out = RSA_2048.encrypt("RSA-OAEP-256", plaintext)
        assert RSA_2048.decrypt("RSA-OAEP-256", out.ciphertext) == plaintext

    @settings(max_examples=30, deadline=None)
    @given(st.binary(min_size=16, max_size=64).filter(lambda b: len(b) % 8 == 0))
    def test_aes_kw_round_trip(self, cek: bytes) -> None:
        """A256KW unwraps back any key of a wrappable length."""
        assert OCT_256.unwrap_key("A256KW", OCT_256.wrap_key("A256KW", cek)) == cek
