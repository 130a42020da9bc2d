"""Finds Flask for the baseline process without installing anything.

Flask is not a dependency of the stack, so the venv may lack it. When it does, and the
interpreter the venv was made from (`sys.base_prefix`, the same Python build) has Flask in its
own site-packages, `flask_pythonpath` links just Flask and the packages it imports into a scratch
directory, to put on that one process's PYTHONPATH. Nothing else from outside the venv becomes
importable, and the venv is not touched.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Flask 3.1 and the distributions it imports (its install_requires).
FLASK_PACKAGES = ("flask", "werkzeug", "jinja2", "itsdangerous", "click", "blinker", "markupsafe")


@dataclass(frozen=True)
class FlaskSource:
    pythonpath: str | None  # None: the venv has Flask itself
    description: str


def _version(site: Path, package: str) -> str:
    for dist in site.glob("*.dist-info"):
        if re.sub(r"-.*", "", dist.name).lower() == package:
            return dist.name.removesuffix(".dist-info").split("-")[1]
    return "?"


def flask_pythonpath(scratch: Path) -> FlaskSource | None:
    """Where the baseline gets Flask from; None when there is no Flask to be had."""
    if importlib.util.find_spec("flask") is not None:
        return FlaskSource(None, "Flask from the venv")
    base = Path(
        sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]
    )
    if not (base / "flask").is_dir():
        return None
    shim = scratch / "flask-site"
    shim.mkdir(parents=True, exist_ok=True)
    for entry in base.iterdir():
        stem = re.sub(r"-.*", "", entry.name).lower()
        if stem in FLASK_PACKAGES and (entry.is_dir() or entry.suffix == ".py"):
            link = shim / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return FlaskSource(
        str(shim),
        f"Flask {_version(base, 'flask')} (not installed in the venv; linked read-only from "
        f"the base interpreter's {base})",
    )
