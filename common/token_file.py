"""One bearer token kept in a file (the backend's management token): read and checked once.

token = read_token_file(Path("run/backend-token"))   # TokenFileError when unusable
"""

from __future__ import annotations

from pathlib import Path

MAX_TOKEN_LENGTH = 4096


class TokenFileError(Exception):
    """The management token file cannot be used (unreadable, empty, or not one token)."""


def read_token_file(path: Path) -> str:
    """The token in `path`: its one non-empty line, without surrounding whitespace."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read the management token file {path}: {exc}") from exc
    tokens = [line for line in lines if line]
    if len(tokens) != 1 or len(tokens[0]) > MAX_TOKEN_LENGTH or " " in tokens[0]:
        raise TokenFileError(f"the management token file {path} must hold exactly one token")
    return tokens[0]
