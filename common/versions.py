"""The one scan of a model's version directories: `<base_path>/<number>/`.

As TF Serving's file-system source does, a version is a child directory whose name is a decimal
number; anything else (an export's hidden `.tmp-...` directory still being written, stray files)
is not a version. A number too large for a version (TF Serving's are int64) is skipped with a
warning, so one odd directory cannot break the model's other versions.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
MAX_VERSION = 2**63 - 1


def version_dirs(base_path: Path) -> dict[int, Path]:
    """Every version directory under `base_path`, by number, ascending; OSError if unlistable."""
    found: dict[int, Path] = {}
    for child in sorted(base_path.iterdir()):
        if not (child.name.isascii() and child.name.isdigit() and child.is_dir()):
            continue
        number = int(child.name)
        if number > MAX_VERSION:
            log.warning("skipping %s: the version number is too large", child.name[:32])
            continue
        found[number] = child
    return dict(sorted(found.items()))


def version_numbers(base_path: Path) -> list[int]:
    """The version numbers under `base_path`, ascending; none when it does not exist."""
    if not base_path.is_dir():
        return []
    return list(version_dirs(base_path))
