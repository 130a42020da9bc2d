"""The one scan of a model's version directories: `<base_path>/<number>/`.

As TF Serving's file-system source does, a version is a child directory whose name is a decimal
number; anything else (an export's hidden `.tmp-...` directory still being written, stray files)
is not a version and is passed over silently. A name that is a number but cannot be a version is
skipped with a warning, so one odd directory cannot break the model's other versions:

- a number too large for a version (TF Serving's are int64; it skips those silently);
- a second spelling of a version already there (`07` next to `7`): as in TF Serving
  (IndexChildrenByVersion), the name that sorts last is used and the other one is skipped.

The warning is logged once per directory while it stays there (scans repeat every poll), and
again if it is removed and comes back.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)
MAX_VERSION = 2**63 - 1
_LOGGED_NAME_LENGTH = 32

# Base path -> the odd names already warned about, as of its last scan.
_warned: dict[Path, frozenset[str]] = {}
_warned_lock = threading.Lock()


def version_dirs(base_path: Path) -> dict[int, Path]:
    """Every version directory under `base_path`, by number, ascending; OSError if unlistable."""
    found: dict[int, Path] = {}
    skipped: dict[str, str] = {}
    for child in sorted(base_path.iterdir()):
        name = child.name
        if not (name.isascii() and name.isdigit() and child.is_dir()):
            continue
        number = int(name)
        if number > MAX_VERSION:
            skipped[name] = "the number is too large for a version (at most 2**63 - 1)"
            continue
        previous = found.get(number)
        if previous is not None:
            skipped[previous.name] = f"it names version {number} too; using directory {name}"
        found[number] = child
    _warn_once(base_path, skipped)
    return dict(sorted(found.items()))


def version_numbers(base_path: Path) -> list[int]:
    """The version numbers under `base_path`, ascending; none when it does not exist."""
    if not base_path.is_dir():
        return []
    return list(version_dirs(base_path))


def _warn_once(base_path: Path, skipped: dict[str, str]) -> None:
    with _warned_lock:
        already = _warned.get(base_path, frozenset())
        if skipped:
            _warned[base_path] = frozenset(skipped)
        else:
            _warned.pop(base_path, None)
    for name in sorted(skipped.keys() - already):
        log.warning(
            "skipping directory %s under %s: %s",
            name[:_LOGGED_NAME_LENGTH],
            base_path,
            skipped[name],
        )
