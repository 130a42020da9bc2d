"""`make serve`'s example comparison: a second CNN version for the `canary` label, made in the
background so the first answer is not delayed.

The example experiment in `serving_config/experiments.toml` splits traffic between the labels
`stable` and `canary`. On a fresh model root both point at version 1, so there is nothing to
compare: once the stack serves, this trains a quick CNN (a few seconds of CPU on CIFAR-10), which
the training command publishes as version 2, has the backend load it (the version policy names
versions one by one), waits until it is AVAILABLE, and moves `canary` to it. From then on the
experiment compares two real models. It does nothing when the model already has two versions
or more, or when CIFAR-10 is not on disk.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from common.versions import version_numbers
from server.model_versions import BackendControl, VersionError, load_version, set_label

MODEL = "cnn"
AVAILABLE_TIMEOUT_S = 300.0


class ExampleCanary(threading.Thread):
    def __init__(self, *, model_dir: Path, config: Path, backend: str, data_dir: str) -> None:
        super().__init__(name="example-canary", daemon=True)
        self._model_dir = model_dir
        self._config = config
        self._backend = backend
        self._data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def wanted(self) -> bool:
        return bool(self._data_dir) and len(version_numbers(self._model_dir)) == 1

    def stop(self) -> None:
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def run(self) -> None:
        print(
            "example experiment: training a second quick CNN in the background for the "
            "'canary' label (the stack serves meanwhile)",
            flush=True,
        )
        command = [sys.executable, "-m", "training", "train", "--model", MODEL, "--quick"]
        command += ["--model-root", str(self._model_dir.parent), "--data-dir", self._data_dir]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if self._process.wait() != 0 or self._stopping.is_set():
            if not self._stopping.is_set():
                print("example experiment: the canary training failed; canary stays", flush=True)
            return
        version = version_numbers(self._model_dir)[-1]
        try:
            with BackendControl(self._backend) as backend:
                load_version(self._config, backend, MODEL, version, timeout_s=AVAILABLE_TIMEOUT_S)
                set_label(self._config, backend, MODEL, "canary", version)
        except VersionError as error:
            print(f"example experiment: cannot serve version {version}: {error}", flush=True)
            return
        print(
            f"example experiment: canary -> version {version}; "
            "experiment 'cnn-stable-vs-canary' now compares versions "
            f"{version_numbers(self._model_dir)[0]} and {version}",
            flush=True,
        )
