"""Finding a model's versions on disk and choosing the ones its version policy aspires to.

The rules are TF Serving's FileSystemStoragePathSource
(sources/storage_path/file_system_storage_path_source.cc): a version is a child directory of the
base path whose name is a number; anything else (`.tmp-...` directories of an export still being
written, stray files) is ignored. `latest` keeps the N highest, `all` every one, `specific` the
listed ones that exist. A missing base path is an error for that model and changes nothing,
while a base path with no versions aspires to none, which unloads whatever was loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from common.versions import version_dirs
from server.model_host.config import PolicyKind, VersionPolicy

log = logging.getLogger(__name__)


class BasePathMissing(Exception):
    """The model's base path does not exist (or cannot be listed)."""


def versions_on_disk(base_path: Path) -> dict[int, Path]:
    """Every version directory under `base_path`, by number."""
    try:
        return version_dirs(base_path)
    except OSError as exc:
        raise BasePathMissing(f"Could not find base path {base_path}: {exc}") from exc


def aspired_versions(policy: VersionPolicy, found: Mapping[int, Path]) -> dict[int, Path]:
    """The versions the policy wants served, out of those found on disk."""
    if policy.kind is PolicyKind.ALL:
        return dict(found)
    if policy.kind is PolicyKind.SPECIFIC:
        return {v: p for v, p in found.items() if v in policy.versions}
    newest = sorted(found, reverse=True)[: policy.num_versions]
    return {v: found[v] for v in newest}


def missing_specific_versions(policy: VersionPolicy, found: Mapping[int, Path]) -> list[int]:
    """Versions a `specific` policy lists that are not on disk (TF Serving warns about them)."""
    if policy.kind is not PolicyKind.SPECIFIC:
        return []
    return sorted(v for v in policy.versions if v not in found)
