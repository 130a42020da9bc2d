"""`make serve`: the whole stack on one machine, on the embedded defaults.

1. `serving_config/models.config` is rendered to `run/models.config` with every model's base path
   re-rooted under MODEL_ROOT (default ./models): the same models, versions policy and labels.
   The copy is kept while it is newer than the source, so label moves made with `server.labels`
   survive a restart. Every model whose directory holds no version gets one: the CNN is trained
   in quick mode on CIFAR-10 (from CIFAR10_DIR, else the official archive, checksum-verified).
2. The model backend starts on port 8500: real `tensorflow_model_server` when it is on PATH,
   else the local model host, with the same config and flags.
3. The gateway starts on port 50051 once the models are AVAILABLE, with the experiments of
   `serving_config/experiments.toml` and its experiment store in RUN_DIR (SQLite).
4. It prints how to call it, then runs until Ctrl-C, which drains both servers. A backend that
   crashes is started again (with a growing pause while it keeps crashing); the gateway answers
   UNAVAILABLE meanwhile and serves again by itself. Meanwhile, on a
   fresh model root, `server.dev_canary` trains a second quick CNN in the background and points
   `canary` at it, so the example experiment compares two real versions (EXAMPLE_CANARY=0 skips
   it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig

from common.versions import version_numbers
from server import models_config
from server.dev_canary import ExampleCanary
from server.model_versions import BackendControl, VersionError

SOURCE_CONFIG = Path(os.environ.get("MODELS_CONFIG", "serving_config/models.config"))
RUN_DIR = Path(os.environ.get("RUN_DIR", "run"))
MODELS_CONFIG = RUN_DIR / "models.config"
BATCHING_CONFIG = Path("serving_config/batching.config")
MODEL_ROOT = Path(os.environ.get("MODEL_ROOT", "models")).resolve()
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "50051"))
BACKEND_PORT = int(os.environ.get("BACKEND_PORT", "8500"))
CONFIG_POLL_SECONDS = 2
READY_TIMEOUT_S = 300.0
RESTART_RESET_S = 60.0  # a backend up this long counts as healthy again
MAX_RESTART_DELAY_S = 30.0
SAMPLE_IMAGE = Path("../shared/testdata/images/odd/jpeg_exif_orientation8_photo.jpg")
TRAINABLE = {"cnn"}
EXAMPLE_EXPERIMENT = "cnn-stable-vs-canary"


def render_runtime_config(source: Path, target: Path, model_root: Path) -> None:
    """Writes `source` to `target` with each base path re-rooted under `model_root`."""
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return
    header = f"Rendered from {source} by `make serve`; base paths re-rooted under {model_root}."
    models_config.rerooted(source, target, model_root, header)


def configured_models() -> list[ModelConfig]:
    _, config = models_config.read(MODELS_CONFIG)
    return list(config.model_config_list.config)


def has_version(base_path: Path) -> bool:
    return bool(version_numbers(base_path))


def train_missing(models: list[ModelConfig]) -> None:
    for model in models:
        base = Path(model.base_path)
        if has_version(base):
            continue
        if model.name not in TRAINABLE:
            sys.exit(f"{base} holds no version of '{model.name}'; train and publish one first")
        print(f"{base} is empty: training a quick '{model.name}' model", flush=True)
        command = [sys.executable, "-m", "training", "train", "--model", model.name, "--quick"]
        command += ["--model-root", str(base.parent)]
        data_dir = os.environ.get("CIFAR10_DIR", "")
        command += ["--data-dir", data_dir] if data_dir else ["--download"]
        subprocess.run(command, check=True)


def backend_command() -> list[str]:
    flags = [
        f"--port={BACKEND_PORT}",
        f"--model_config_file={MODELS_CONFIG}",
        f"--model_config_file_poll_wait_seconds={CONFIG_POLL_SECONDS}",
        "--allow_version_labels_for_unavailable_models=true",
        "--file_system_poll_wait_seconds=1",
    ]
    real = shutil.which("tensorflow_model_server")
    if real:
        print(f"backend: real TF Serving ({real})", flush=True)
        batching = ["--enable_batching=true", f"--batching_parameters_file={BATCHING_CONFIG}"]
        return [real, "--rest_api_port=0", *flags, *batching]
    print("backend: local model host (tensorflow_model_server is not on PATH)", flush=True)
    return [sys.executable, "-m", "server.model_host", *flags]


def wait_available(models: list[str], deadline: float, process: subprocess.Popen[bytes]) -> None:
    with BackendControl(f"localhost:{BACKEND_PORT}", timeout_s=2) as backend:
        pending = set(models)
        while pending:
            if process.poll() is not None:
                sys.exit("the model backend exited; see its log above")
            if time.monotonic() > deadline:
                sys.exit(f"models not AVAILABLE in time: {', '.join(sorted(pending))}")
            for name in list(pending):
                try:
                    if backend.available(name):
                        pending.discard(name)
                except VersionError:
                    continue
            time.sleep(0.3)


def wait_serving(deadline: float, process: subprocess.Popen[bytes]) -> None:
    with grpc.insecure_channel(f"localhost:{GATEWAY_PORT}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                sys.exit("the gateway exited; see its log above")
            if time.monotonic() > deadline:
                sys.exit("the gateway did not become ready in time")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)


def admin_token_file() -> Path:
    """A token for the Admin API of this local stack, made once (readable by its owner only)."""
    path = (RUN_DIR / "admin-token").resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path


def usage(models: list[str]) -> str:
    bin_dir = Path(sys.executable).parent
    image = SAMPLE_IMAGE if SAMPLE_IMAGE.exists() else Path("path/to/photo.jpg")
    report_port = os.environ.get("IMGCLF_GATEWAY_REPORT_PORT", "9465")
    return f"""
The stack is up: gateway localhost:{GATEWAY_PORT} -> model backend localhost:{BACKEND_PORT}
Models: {", ".join(models)}   (config: {MODELS_CONFIG})

Classify an image:
  {bin_dir}/classify {image} --model cnn --label stable

Classify through the example experiment (stable vs canary; a routing key keeps its arm):
  {bin_dir}/classify {image} --experiment {EXAMPLE_EXPERIMENT} --routing-key user-1
Send the true class of that call (by the request id it printed), then read the report:
  {bin_dir}/imgclf-experiment feedback <request id> cat
  {bin_dir}/imgclf-experiment report {EXAMPLE_EXPERIMENT}
  curl -s localhost:{report_port}/experiments/{EXAMPLE_EXPERIMENT}/verdict
Change its weights (the Admin API; this stack's token is in {admin_token_file()}):
  {bin_dir}/imgclf-experiment set-weights {EXAMPLE_EXPERIMENT} stable=90 canary=10 \\
      --token-file {admin_token_file()}

Publish a new version and roll it out (shadow, canary 10/50/100%, analysis, promote):
  {bin_dir}/python -m training train --model cnn --quick --model-root {MODEL_ROOT} \\
      --data-dir {os.environ.get("CIFAR10_DIR") or "<CIFAR-10 dir>"}
  make rollout MODEL=cnn VERSION=<N> PLAN=quick
  {bin_dir}/python -m server.rollout status --model cnn

Ctrl-C stops both servers.
""".rstrip()


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def supervise(processes: list[subprocess.Popen[bytes]]) -> int:
    """Watches [backend, gateway]: a backend that exits is started again (after 1, 2, 4 ... 30 s
    while it keeps exiting at once), the gateway answering UNAVAILABLE meanwhile; a gateway
    that exits stops the stack."""
    failures = 0
    started = time.monotonic()
    while True:
        backend, gateway = processes
        if gateway.poll() is not None:
            print("the gateway exited; stopping the stack", file=sys.stderr, flush=True)
            return 1
        if backend.poll() is not None:
            failures = 1 if time.monotonic() - started > RESTART_RESET_S else failures + 1
            delay = min(MAX_RESTART_DELAY_S, 2.0 ** (failures - 1))
            print(
                f"the model backend exited (code {backend.returncode}); starting it again in "
                f"{delay:g} s (the gateway answers UNAVAILABLE meanwhile)",
                flush=True,
            )
            time.sleep(delay)
            processes[0] = subprocess.Popen(backend_command())
            started = time.monotonic()
            print(f"model backend started again (pid {processes[0].pid})", flush=True)
        time.sleep(0.5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    render_runtime_config(SOURCE_CONFIG, MODELS_CONFIG, MODEL_ROOT)
    models = configured_models()
    train_missing(models)
    names = [m.name for m in models]
    processes: list[subprocess.Popen[bytes]] = []
    canary: ExampleCanary | None = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        backend = subprocess.Popen(backend_command())
        processes.append(backend)
        print(f"model backend started (pid {backend.pid})", flush=True)
        wait_available(names, time.monotonic() + READY_TIMEOUT_S, backend)
        env = {
            "IMGCLF_GATEWAY_STORE_URL": f"sqlite+aiosqlite:///{RUN_DIR.resolve()}/experiments.db",
            "IMGCLF_GATEWAY_ADMIN_TOKEN_FILE": str(admin_token_file()),
            **os.environ,
            "IMGCLF_GATEWAY_PORT": str(GATEWAY_PORT),
            "IMGCLF_GATEWAY_BACKEND_TARGET": f"localhost:{BACKEND_PORT}",
            "IMGCLF_GATEWAY_MODELS_CONFIG_PATH": str(MODELS_CONFIG),
        }
        gateway = subprocess.Popen([sys.executable, "-m", "server.gateway"], env=env)
        processes.append(gateway)
        wait_serving(time.monotonic() + 60, gateway)
        print(usage(names), flush=True)
        canary = ExampleCanary(
            model_dir=MODEL_ROOT / "cnn",
            config=MODELS_CONFIG,
            backend=f"localhost:{BACKEND_PORT}",
            data_dir=os.environ.get("CIFAR10_DIR", ""),
        )
        if os.environ.get("EXAMPLE_CANARY", "1") != "0" and canary.wanted():
            canary.start()
        return supervise(processes)
    except KeyboardInterrupt:
        print("\nstopping the stack", flush=True)
        return 0
    finally:
        if canary is not None:
            canary.stop()
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
