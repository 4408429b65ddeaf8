"""Recognise a salted password hash of a known password, in the formats real systems store.

An export that says a password exists ("password": "[hidden]") discloses nothing; one that
carries the stored hash hands out what an attacker needs to recover it offline (11 CCR
§7024(d) lets a business say only that it holds a password). A salted hash cannot be found by
the sweep's digest forms, so each value that parses as a known format is checked the way a
login would check it: with the subject's password, the salt and the cost it names.

Formats: Werkzeug (`pbkdf2:sha256:600000$salt$hex`, `scrypt:32768:8:1$salt$hex`), Django
(`pbkdf2_sha256$600000$salt$base64`), passlib's modular form (`$pbkdf2-sha256$29000$salt$hash`),
the demo target's own (`scrypt$8192$8$1$salthex$hex`), bcrypt (`$2b$12$...`) and Argon2
(`$argon2id$v=19$m=65536,t=3,p=4$...`). Costs are capped so a hostile value cannot make the
check hang.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

MAX_PBKDF2_ROUNDS = 5_000_000
MAX_SCRYPT_N = 2**20

_WERKZEUG = re.compile(r"^(pbkdf2:(sha1|sha256|sha512)(?::(\d+))?|scrypt:(\d+):(\d+):(\d+))\$([^$]+)\$([0-9a-f]+)$")
_DJANGO = re.compile(r"^pbkdf2_(sha1|sha256)\$(\d+)\$([^$]+)\$([A-Za-z0-9+/=]+)$")
_PASSLIB = re.compile(r"^\$pbkdf2(?:-(sha256|sha512))?\$(\d+)\$([./A-Za-z0-9]*)\$([./A-Za-z0-9]+)$")
_DEMO = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]+)\$([0-9a-f]+)$")
_BCRYPT = re.compile(r"^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$")
_ARGON2 = re.compile(r"^\$argon2(id|i|d)\$v=\d+\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
MAX_ARGON2_KIB = 1 << 20


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes | None:
    if n > MAX_SCRYPT_N or n < 2 or r * p > 64 or not 0 < length <= 128:
        return None
    try:
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length,
                              maxmem=256 * n * r * p + (1 << 20))
    except ValueError:
        return None


def _pbkdf2(digest: str, password: str, salt: bytes, rounds: int, length: int) -> bytes | None:
    if not 0 < rounds <= MAX_PBKDF2_ROUNDS or not 0 < length <= 128:
        return None
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, rounds, length)


def _ab64(text: str) -> bytes:
    """passlib's adapted base64 ('.' for '+', no padding)."""
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _same(derived: bytes | None, expected: bytes) -> bool:
    return derived is not None and hmac.compare_digest(derived, expected)


def hash_scheme(value: str, password: str) -> str | None:
    """The scheme name when `value` is a salted hash of `password`, else None."""
    value = value.strip()
    if not value or not password or len(value) > 1024:
        return None
    try:
        m = _WERKZEUG.match(value)
        if m:
            salt, expected = m.group(7).encode(), bytes.fromhex(m.group(8))
            if m.group(2):
                rounds = int(m.group(3) or 600_000)
                return "pbkdf2" if _same(_pbkdf2(m.group(2), password, salt, rounds, len(expected)), expected) else None
            n, r, p = int(m.group(4)), int(m.group(5)), int(m.group(6))
            return "scrypt" if _same(_scrypt(password, salt, n, r, p, len(expected)), expected) else None
        m = _DEMO.match(value)
        if m:
            n, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
            salt, expected = bytes.fromhex(m.group(4)), bytes.fromhex(m.group(5))
            return "scrypt" if _same(_scrypt(password, salt, n, r, p, len(expected)), expected) else None
        m = _DJANGO.match(value)
        if m:
            expected = base64.b64decode(m.group(4))
            derived = _pbkdf2(m.group(1), password, m.group(3).encode(), int(m.group(2)), len(expected))
            return "pbkdf2" if _same(derived, expected) else None
        m = _PASSLIB.match(value)
        if m:
            expected = _ab64(m.group(4))
            derived = _pbkdf2(m.group(1) or "sha1", password, _ab64(m.group(3)), int(m.group(2)), len(expected))
            return "pbkdf2" if _same(derived, expected) else None
        if _BCRYPT.match(value):
            import bcrypt

            return "bcrypt" if bcrypt.checkpw(password.encode()[:72], value.encode()) else None
        m = _ARGON2.match(value)
        if m and int(m.group(2)) <= MAX_ARGON2_KIB and int(m.group(3)) <= 100:
            return "argon2" if _argon2(value, password) else None
    except (ValueError, binascii.Error, OverflowError):
        return None
    return None


def _argon2(value: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return PasswordHasher().verify(value, password)
    except (VerificationError, InvalidHashError):
        return False
