"""The package stands on its own: no TensorFlow or Pillow, typed, with its command."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata, resources

HEAVY = ("tensorflow", "keras", "PIL")


def test_importing_the_client_does_not_import_tensorflow() -> None:
    code = (
        "import sys, imgclf_client, imgclf_client.cli; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_py_typed_marker() -> None:
    assert resources.files("imgclf_client").joinpath("py.typed").is_file()


def test_classify_script_entry_point() -> None:
    (entry,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "classify"]
    assert entry.value == "imgclf_client.cli:main"
