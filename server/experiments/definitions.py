"""Experiment definitions: the value types, their validation, and their file and JSON forms.

An experiment has a name, two or more arms (a model reference and a weight), optional shadow arms
(a model reference and a sample rate) and the settings of its sequential test. The same dict
form is used in `serving_config/experiments.toml` (one `[experiments.NAME]` table each), in the
store (JSON) and, through the converters, in the Admin API, so a definition means the same thing
wherever it is written.

Validation comes in two parts: `validate` checks the definition on its own (names, weights,
rates, references); `check_models` checks it against the models the backend is configured with
(unknown model or label). Both raise `DefinitionError` with a message that names the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.statistics import SequentialTestSettings
from server.gateway.domain import ModelRef

MAX_NAME_LENGTH = 128
MAX_ARMS = 16
MAX_DESCRIPTION_LENGTH = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DefinitionError(ValueError):
    """The definition is refused; the message says what is wrong."""


@dataclass(frozen=True)
class Arm:
    name: str
    model: ModelRef
    weight: float


@dataclass(frozen=True)
class ShadowArm:
    name: str
    model: ModelRef
    sample_rate: float


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]
    shadows: tuple[ShadowArm, ...] = ()
    analysis: SequentialTestSettings = field(default_factory=SequentialTestSettings)
    description: str = ""

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    @property
    def shadow_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.shadows)


def check_name(kind: str, name: str) -> None:
    if not name:
        raise DefinitionError(f"{kind} name is required")
    if len(name) > MAX_NAME_LENGTH:
        raise DefinitionError(f"{kind} name is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.match(name):
        raise DefinitionError(
            f"{kind} name '{name}' may only hold letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )


def _check_ref(where: str, ref: ModelRef) -> None:
    if not ref.name:
        raise DefinitionError(f"{where}: a model name is required")
    if len(ref.name) > MAX_NAME_LENGTH:
        raise DefinitionError(f"{where}: model name is longer than {MAX_NAME_LENGTH} characters")
    if ref.version is not None and ref.label is not None:
        raise DefinitionError(f"{where}: give a version or a label, not both")
    if ref.version is not None and ref.version <= 0:
        raise DefinitionError(f"{where}: version must be a positive integer, got {ref.version}")
    if ref.label is not None and not 0 < len(ref.label) <= MAX_NAME_LENGTH:
        raise DefinitionError(f"{where}: label must be a non-empty name such as 'stable'")


def validate(experiment: Experiment) -> None:
    """Checks the definition on its own; raises `DefinitionError` naming the first problem."""
    check_name("experiment", experiment.name)
    where = f"experiment '{experiment.name}'"
    if len(experiment.description) > MAX_DESCRIPTION_LENGTH:
        raise DefinitionError(f"{where}: description is over {MAX_DESCRIPTION_LENGTH} characters")
    if len(experiment.arms) < 2:
        raise DefinitionError(f"{where} needs at least two arms, has {len(experiment.arms)}")
    if len(experiment.arms) + len(experiment.shadows) > MAX_ARMS:
        raise DefinitionError(f"{where} has more than {MAX_ARMS} arms and shadow arms")
    seen: set[str] = set()
    for arm in experiment.arms:
        check_name("arm", arm.name)
        if arm.name in seen:
            raise DefinitionError(f"{where}: duplicate arm name '{arm.name}'")
        seen.add(arm.name)
        _check_ref(f"{where}, arm '{arm.name}'", arm.model)
        if not math.isfinite(arm.weight) or arm.weight < 0:
            raise DefinitionError(
                f"{where}, arm '{arm.name}': weight must be a number >= 0, got {arm.weight}"
            )
    if sum(a.weight for a in experiment.arms) <= 0:
        raise DefinitionError(f"{where}: the arms' weights sum to 0; give some arm a weight > 0")
    for shadow in experiment.shadows:
        check_name("shadow arm", shadow.name)
        if shadow.name in seen:
            raise DefinitionError(f"{where}: duplicate arm name '{shadow.name}'")
        seen.add(shadow.name)
        _check_ref(f"{where}, shadow arm '{shadow.name}'", shadow.model)
        if not (math.isfinite(shadow.sample_rate) and 0 <= shadow.sample_rate <= 1):
            raise DefinitionError(
                f"{where}, shadow arm '{shadow.name}': sample_rate must be from 0 to 1, "
                f"got {shadow.sample_rate}"
            )


def check_models(experiment: Experiment, models: Mapping[str, Sequence[str]]) -> None:
    """Checks every reference against the configured models (name -> its labels)."""
    arms: list[tuple[str, ModelRef]] = [(f"arm '{a.name}'", a.model) for a in experiment.arms]
    arms += [(f"shadow arm '{s.name}'", s.model) for s in experiment.shadows]
    for where, ref in arms:
        if ref.name not in models:
            known = ", ".join(sorted(models)) or "none"
            raise DefinitionError(
                f"experiment '{experiment.name}', {where}: unknown model '{ref.name}' "
                f"(models: {known})"
            )
        if ref.label is not None and ref.label not in models[ref.name]:
            labels = ", ".join(sorted(models[ref.name])) or "none"
            raise DefinitionError(
                f"experiment '{experiment.name}', {where}: model '{ref.name}' has no label "
                f"'{ref.label}' (labels: {labels})"
            )


def _ref_to_dict(ref: ModelRef) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": ref.name}
    if ref.version is not None:
        entry["version"] = ref.version
    if ref.label is not None:
        entry["label"] = ref.label
    return entry


def to_dict(experiment: Experiment) -> dict[str, Any]:
    """The definition as plain data (TOML/JSON form), without the name."""
    analysis = experiment.analysis
    return {
        "description": experiment.description,
        "arms": [
            _ref_to_dict(a.model) | {"name": a.name, "weight": a.weight} for a in experiment.arms
        ],
        "shadows": [
            _ref_to_dict(s.model) | {"name": s.name, "sample_rate": s.sample_rate}
            for s in experiment.shadows
        ],
        "analysis": {
            "alpha": analysis.alpha,
            "min_samples": analysis.min_samples,
            "mixture_sd": analysis.mixture_sd,
        },
    }


def _expect(value: object, kind: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DefinitionError(f"{where} must be a {names}, got {value!r}")
    return value


def _ref_from_dict(entry: Mapping[str, Any], where: str) -> ModelRef:
    model = _expect(entry.get("model", ""), str, f"{where}: model")
    version = entry.get("version")
    label = entry.get("label")
    return ModelRef(
        model,
        version=None if version is None else _expect(version, int, f"{where}: version"),
        label=None if label is None else _expect(label, str, f"{where}: label"),
    )


def _check_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise DefinitionError(f"{where}: unknown key(s) {', '.join(unknown)}")


def from_dict(name: str, data: Mapping[str, Any]) -> Experiment:
    """Reads the plain-data form; raises `DefinitionError` for malformed data, then validates."""
    where = f"experiment '{name}'"
    _check_keys(data, {"description", "arms", "shadows", "analysis"}, where)
    ref_keys = {"name", "model", "version", "label"}
    arms: list[Arm] = []
    for i, entry in enumerate(_expect(data.get("arms", []), list, f"{where}: arms")):
        at = f"{where}, arms[{i}]"
        _check_keys(_expect(entry, dict, at), ref_keys | {"weight"}, at)
        weight = _expect(entry.get("weight", 1.0), (int, float), f"{at}: weight")
        arm_name = _expect(entry.get("name", ""), str, f"{at}: name")
        arms.append(Arm(arm_name, _ref_from_dict(entry, at), float(weight)))
    shadows: list[ShadowArm] = []
    for i, entry in enumerate(_expect(data.get("shadows", []), list, f"{where}: shadows")):
        at = f"{where}, shadows[{i}]"
        _check_keys(_expect(entry, dict, at), ref_keys | {"sample_rate"}, at)
        rate = _expect(entry.get("sample_rate", 1.0), (int, float), f"{at}: sample_rate")
        shadow_name = _expect(entry.get("name", ""), str, f"{at}: name")
        shadows.append(ShadowArm(shadow_name, _ref_from_dict(entry, at), float(rate)))
    analysis_data = _expect(data.get("analysis", {}), dict, f"{where}: analysis")
    _check_keys(analysis_data, {"alpha", "min_samples", "mixture_sd"}, f"{where}: analysis")
    defaults = SequentialTestSettings()
    try:
        analysis = SequentialTestSettings(
            alpha=float(_expect(analysis_data.get("alpha", defaults.alpha), (int, float), "alpha")),
            min_samples=_expect(
                analysis_data.get("min_samples", defaults.min_samples), int, "min_samples"
            ),
            mixture_sd=float(
                _expect(
                    analysis_data.get("mixture_sd", defaults.mixture_sd), (int, float), "mixture_sd"
                )
            ),
        )
    except ValueError as error:
        raise DefinitionError(f"{where}: analysis: {error}") from error
    description = _expect(data.get("description", ""), str, f"{where}: description")
    experiment = Experiment(name, tuple(arms), tuple(shadows), analysis, description)
    validate(experiment)
    return experiment


def digest(experiment: Experiment) -> str:
    """A stable fingerprint of the definition (SHA-256 of its canonical JSON form)."""
    canonical = json.dumps({"name": experiment.name, **to_dict(experiment)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_file(path: Path) -> list[Experiment]:
    """The experiments of a TOML file (`[experiments.NAME]` tables); a missing file holds none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DefinitionError(f"{path}: not valid TOML: {error}") from error
    _check_keys(data, {"experiments"}, str(path))
    tables = _expect(data.get("experiments", {}), dict, f"{path}: experiments")
    experiments = []
    for name, table in tables.items():
        check_name("experiment", name)
        experiments.append(from_dict(name, _expect(table, dict, f"{path}: experiments.{name}")))
    return experiments
