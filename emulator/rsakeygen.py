"""RSA key generation for any odd public exponent, as a Managed HSM creates them.

`cryptography` generates RSA keys with the exponents 3 and 65537 only, but a Managed HSM
also creates keys with others (Azure's own SDK tests create one with e = 17 and read it
back). For those this module finds the two primes itself: random odd candidates of half
the modulus size with the top two bits set (so n has exactly `bits` bits), sieved by
small primes, kept when gcd(e, p - 1) = 1, then 16 rounds of Miller-Rabin with random
bases (a worst-case error of 4^-16 per prime, and far below 2^-100 for random candidates
of these sizes). Key material from here is for the emulator, not for production use.
"""

from __future__ import annotations

import math
import secrets

from cryptography.hazmat.primitives.asymmetric import rsa

_SMALL_PRIMES = tuple(
    p for p in range(3, 2000, 2) if all(p % d for d in range(3, math.isqrt(p) + 1, 2))
)
_MILLER_RABIN_ROUNDS = 16
# p and q must differ in their top 100 bits (FIPS 186-5 A.1.3), so that n cannot be
# factored by searching near its square root.
_MIN_PRIME_DISTANCE_BITS = 100


def _probably_prime(candidate: int) -> bool:
    d, shift = candidate - 1, 0
    while d % 2 == 0:
        d //= 2
        shift += 1
    for _ in range(_MILLER_RABIN_ROUNDS):
        base = 2 + secrets.randbelow(candidate - 3)
        x = pow(base, d, candidate)
        if x in (1, candidate - 1):
            continue
        for _ in range(shift - 1):
            x = pow(x, 2, candidate)
            if x == candidate - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, exponent: int) -> int:
    """A random prime of exactly `bits` bits, top two bits set, with gcd(e, p - 1) = 1."""
    while True:
        candidate = secrets.randbits(bits) | (0b11 << (bits - 2)) | 1
        if any(candidate % small == 0 for small in _SMALL_PRIMES):
            continue
        if math.gcd(exponent, candidate - 1) != 1:
            continue
        if _probably_prime(candidate):
            return candidate


def generate_rsa_key(exponent: int, bits: int) -> rsa.RSAPrivateKey:
    """A new RSA key with modulus size `bits` (even) and public exponent `exponent` (odd)."""
    if exponent < 3 or exponent % 2 == 0:
        raise ValueError("the RSA public exponent must be odd and at least 3")
    if exponent in (3, 65537):
        return rsa.generate_private_key(public_exponent=exponent, key_size=bits)
    half = bits // 2
    while True:
        p, q = _prime(half, exponent), _prime(half, exponent)
        if abs(p - q).bit_length() <= half - _MIN_PRIME_DISTANCE_BITS:
            continue
        n = p * q
        lam = math.lcm(p - 1, q - 1)
        d = pow(exponent, -1, lam)
        numbers = rsa.RSAPrivateNumbers(
            p,
            q,
            d,
            rsa.rsa_crt_dmp1(d, p),
            rsa.rsa_crt_dmq1(d, q),
            rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(exponent, n),
        )
        return numbers.private_key()
