"""Bearer tokens for the Admin API: read from a file and/or an environment variable.

Several tokens may be valid at once (one per line in the file, comma-separated in the variable),
so a token can be rotated without downtime. The file is re-read when it changes. A token is
compared with every valid one in constant time. A caller is named in the audit log by a short
fingerprint of its token (never the token).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from server.gateway.errors import PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)
MAX_TOKEN_LENGTH = 4096


def fingerprint(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenAuthorizer:
    def __init__(self, *, token_file: Path | None, token_env: str) -> None:
        self._file = token_file
        self._env = token_env
        self._file_mtime: float | None = None
        self._file_tokens: tuple[str, ...] = ()

    def _tokens(self) -> tuple[str, ...]:
        tokens: list[str] = []
        if self._env:
            tokens += [t.strip() for t in os.environ.get(self._env, "").split(",")]
        if self._file is not None:
            try:
                mtime = self._file.stat().st_mtime
                if mtime != self._file_mtime:
                    lines = self._file.read_text().splitlines()
                    self._file_tokens = tuple(t.strip() for t in lines)
                    self._file_mtime = mtime
            except OSError as error:
                log.warning("cannot read the admin token file %s: %s", self._file, error)
            tokens += self._file_tokens
        return tuple(t for t in tokens if t and not t.startswith("#"))

    def authorize(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The caller's fingerprint; Unauthenticated or PermissionDenied otherwise."""
        header = next((v for k, v in metadata if k.lower() == "authorization"), None)
        if header is None:
            raise Unauthenticated(
                "the Admin API needs a token: send metadata 'authorization: Bearer <token>'"
            )
        value = header.decode("latin-1") if isinstance(header, bytes) else header
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        valid = self._tokens()
        if not valid:
            raise PermissionDenied(
                "the Admin API is disabled: no admin token is configured on the gateway"
            )
        matched = False
        for candidate in valid:
            matched |= hmac.compare_digest(candidate.encode(), token.encode())
        if not matched:
            raise PermissionDenied("the token is not valid for the Admin API")
        return fingerprint(token)
