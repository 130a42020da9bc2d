"""The host's ServerCore: the current config, its labels, polling, and request resolution.

`reload_config` does what TF Serving's ServerCore::ReloadConfig does, in its order: check the
transition, the model list and platforms, validate the labels against the versions' current
states (UpdateModelVersionLabelMap), then apply: removed models unload, new models are scanned and
loaded before the call returns (and it fails with UNKNOWN if one did not become available).
Models that stay pick up policy changes at the next file-system poll. A config refused by a check
changes nothing.

The core's lock covers only the config and the scans that turn it into aspired versions, never a
load: loads (and a new model's wait for its versions to settle) run after it is released, so a
slow or failing load holds up neither a config reload nor the polling of other models.

`resolve` turns a ModelSpec into a pinned version like ServerCore::GetServableHandle: `version`
is that version, `version_label` the label's version, neither the highest AVAILABLE one.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

import grpc
from tensorflow_serving.apis import model_pb2

from server.model_host import errors
from server.model_host.config import (
    ModelConfig,
    ModelServerConfig,
    ModelSettings,
    PolicyKind,
    check_no_duplicates,
    check_no_platform_changes,
    model_settings,
)
from server.model_host.options import HostOptions
from server.model_host.registry import Handle, ModelRegistry, State, VersionStatus
from server.model_host.servable import Servable
from server.model_host.versions import (
    BasePathMissing,
    aspired_versions,
    missing_specific_versions,
    versions_on_disk,
)

log = logging.getLogger(__name__)

Labels = Mapping[str, Mapping[str, int]]


class ModelHostCore:
    """Config, labels and versions of the host; every method is thread-safe."""

    def __init__(self, options: HostOptions, registry: ModelRegistry | None = None) -> None:
        self.options = options
        self.stopping = threading.Event()
        self.registry = registry or ModelRegistry(
            functools.partial(Servable.load, tags=options.saved_model_tags),
            max_num_load_retries=options.max_num_load_retries,
            load_retry_interval_seconds=options.load_retry_interval_seconds,
            stopping=self.stopping,
        )
        self._lock = threading.RLock()
        self._config: ModelServerConfig | None = None
        self._applied: ModelServerConfig | None = None
        self._settings: dict[str, ModelSettings] = {}
        # Swapped whole, so requests read it without the lock.
        self._labels: Labels | None = None
        self._last_warning: dict[str, str] = {}
        # Bumped by every applied config, so a reload that finishes after a newer one does not
        # record its config as the applied one.
        self._generation = 0

    # --- config -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stops loading: pollers see `stopping`, waiting load retries are cancelled."""
        self.stopping.set()
        self.registry.close()

    @property
    def applied_config(self) -> ModelServerConfig | None:
        """The last config that was applied without error."""
        return self._applied

    def reload_config(self, config: ModelServerConfig) -> None:
        """Replaces the whole config, or raises ServingError. A config refused by a check changes
        nothing; one whose new model fails to load stays applied (as in TF Serving) and the call
        still fails, with UNKNOWN."""
        with self._lock:
            previous_config = self._config
            choice = config.WhichOneof("config")
            if previous_config is not None and (
                previous_config.WhichOneof("config") != "model_config_list"
                or choice != "model_config_list"
            ):
                raise errors.illegal_config_transition()
            if choice is None:
                log.info("Taking no action for empty config.")
                return
            if choice != "model_config_list":
                raise errors.custom_model_config_not_supported()
            models = list(config.model_config_list.config)
            check_no_duplicates(models)
            if previous_config is not None:
                check_no_platform_changes(previous_config.model_config_list.config, models)
            labels = self._validated_labels(models)
            settings = {s.name: s for s in model_settings(models)}

            self._config = copy.deepcopy(config)
            self._labels = labels
            previous, self._settings = self._settings, settings
            self._generation += 1
            generation = self._generation
            log.info("Adding/updating models: %s", ", ".join(settings) or "(none)")
            removed = sorted(previous.keys() - settings.keys())
            for name in removed:
                log.info("model %s is no longer configured: unloading it", name)
                self.registry.set_aspired(name, {})
            new_models = [name for name in settings if name not in previous]
            if self.options.file_system_poll_wait_seconds >= 0:
                for name in new_models:
                    self._aspire_from_disk(settings[name])
        # Loads and unloads happen without the lock (see the module docstring).
        for name in [*removed, *new_models]:
            self.registry.reconcile(name)
        self.registry.wait_settled(new_models)
        failures = self._not_available(new_models)
        if failures:
            raise errors.models_not_available(failures)
        with self._lock:
            if self._generation == generation:
                self._applied = copy.deepcopy(config)
        log.info("Finished reloading config")

    def _validated_labels(self, models: Sequence[ModelConfig]) -> Labels:
        # ServerCore::UpdateModelVersionLabelMap.
        current = self._labels
        result: dict[str, dict[str, int]] = {}
        allow_unavailable = self.options.allow_version_labels_for_unavailable_models
        for model in models:
            states = {s.version: s.state for s in self.registry.states(model.name)}
            for label, version in sorted(model.version_labels.items()):
                allow_any = False
                if allow_unavailable:
                    existing = (current or {}).get(model.name, {}).get(label)
                    allow_any = existing is None or existing == version
                if not allow_any and states.get(version) is not State.AVAILABLE:
                    raise errors.label_version_unavailable(model.name, version)
                result.setdefault(model.name, {})[label] = int(version)
        return result

    def _not_available(self, models: Sequence[str]) -> list[tuple[str, int, str]]:
        failures = []
        for name in models:
            status = self.registry.settled_latest(name)
            if status is not None and status.state is State.END:
                error = (
                    f"{_code_name(status.error_code)}: {status.error_message}"
                    if status.error_code
                    else ""
                )
                failures.append((name, status.version, error))
        return failures

    # --- file system --------------------------------------------------------------------------

    def poll_file_system(self) -> None:
        """One scan of every configured model's base path, then the loads/unloads it implies."""
        with self._lock:
            names = list(self._settings)
        for name in names:
            if self.stopping.is_set():
                return
            with self._lock:
                settings = self._settings.get(name)
                if settings is None:
                    continue  # removed by a reload meanwhile
                self._aspire_from_disk(settings)
            self.registry.reconcile(name)

    def _aspire_from_disk(self, settings: ModelSettings) -> None:
        # The caller holds the lock.
        try:
            found = versions_on_disk(settings.base_path)
        except BasePathMissing:
            self._warn_once(
                settings.name,
                f"Could not find base path {settings.base_path} for servable {settings.name}",
            )
            return
        if not found:
            self._warn_once(
                settings.name,
                f"No versions of servable {settings.name} found under base path "
                f"{settings.base_path}. Did you forget to name your leaf directory as a "
                "number (eg. '/1/')?",
            )
        else:
            missing = missing_specific_versions(settings.policy, found)
            self._warn_once(
                settings.name,
                f"Versions {missing} of servable {settings.name}, which were requested to be "
                "served as 'specific' versions in the servable's version policy, were not "
                "found in the file system"
                if missing
                else "",
            )
        pinned = settings.policy.versions if settings.policy.kind is PolicyKind.SPECIFIC else ()
        self.registry.set_aspired(settings.name, aspired_versions(settings.policy, found), pinned)

    def _warn_once(self, model: str, message: str) -> None:
        if message and self._last_warning.get(model) != message:
            log.warning(message, extra={"model": model})
        self._last_warning[model] = message

    # --- requests -----------------------------------------------------------------------------

    def resolve(self, spec: model_pb2.ModelSpec) -> AbstractContextManager[Handle]:
        """The version `spec` asks for, pinned for the request (raises ServingError)."""
        if not spec.name:
            raise errors.no_model_name()
        choice = spec.WhichOneof("version_choice")
        version: int | None = None
        if choice == "version":
            version = int(spec.version.value)
        elif choice == "version_label":
            labels = self._labels
            if labels is None:
                raise errors.labels_not_initialised(spec.version_label)
            version = labels.get(spec.name, {}).get(spec.version_label)
            if version is None:
                raise errors.unknown_version_label(spec.version_label)
        return self.registry.acquire(spec.name, version)

    def version_states(self, model: str) -> list[VersionStatus]:
        return self.registry.states(model)


def _code_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return "UNKNOWN"
