"""Proof that an engine holds the key a client shares with it, asked before the client sends it any text.

The client sends a fresh random challenge; the engine answers with an HMAC-SHA256 of it under the key. A process
that took over the engine's port (after the engine exited) cannot answer, so it never receives a buffer, and the
key itself never travels before the proof.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

CHALLENGE_HEADER = "X-Mercury-Challenge"
PROOF_HEADER = "X-Mercury-Proof"
_CHALLENGE = re.compile(r"[0-9a-f]{32,128}")
_CONTEXT = b"mercury-engine-identity\n"  # binds the MAC to this use of the key


def new_challenge() -> str:
    return secrets.token_hex(16)


def is_challenge(value: str) -> bool:
    return _CHALLENGE.fullmatch(value) is not None


def proof(key: str, challenge: str) -> str:
    """The engine's answer to a challenge (lowercase hex)."""
    return hmac.new(key.encode("utf-8", "surrogateescape"), _CONTEXT + challenge.encode("ascii"),
                    hashlib.sha256).hexdigest()


def verify(key: str, challenge: str, presented: str | None) -> bool:
    """Whether `presented` answers `challenge` under `key` (compared in constant time)."""
    if presented is None:
        return False
    expected = proof(key, challenge).encode()
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), expected)
