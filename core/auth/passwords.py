"""Password hashing with Argon2id (argon2-cffi), the OWASP-recommended memory-hard hash.

Hashes are PHC strings (``$argon2id$v=19$m=...``) carrying their own salt and parameters, so the
parameters can be raised later: :func:`needs_rehash` tells the sign-in code to store a fresh hash.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

# argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()
# A hash of nothing, verified against when the user does not exist, so that an unknown name
# takes as long to refuse as a wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("not a password: timing equaliser")


def check_password_policy(password: str) -> None:
    """Refuse passwords that are too short or too long.

    Raises:
        ValueError: With what is wrong.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (checked against the policy first).

    Raises:
        ValueError: The password breaks the policy.
    """
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; ``None`` spends the same time and says no."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with older parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


__all__ = ["MIN_PASSWORD_LENGTH", "check_password_policy", "hash_password", "needs_rehash", "verify_password"]
