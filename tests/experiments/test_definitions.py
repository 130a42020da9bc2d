"""Experiment definitions: the file form, validation messages that name the problem, digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.experiments.definitions import (
    DefinitionError,
    check_models,
    digest,
    from_dict,
    load_file,
    to_dict,
)
from server.gateway.domain import ModelRef

MODELS = {"cnn": ["stable", "canary"], "xception": []}


def arms(*entries: dict[str, object]) -> dict[str, object]:
    return {"arms": list(entries)}


A = {"name": "a", "model": "cnn", "label": "stable", "weight": 1}
B = {"name": "b", "model": "cnn", "version": 2, "weight": 1}


def test_the_committed_experiments_file_is_valid_against_the_committed_models() -> None:
    experiments = load_file(Path("serving_config/experiments.toml"))
    assert experiments, "serving_config/experiments.toml defines the example experiment"
    for experiment in experiments:
        check_models(experiment, MODELS)


def test_round_trip_through_the_plain_form() -> None:
    data = {
        "description": "d",
        **arms(A, B),
        "shadows": [{"name": "s", "model": "xception", "sample_rate": 0.5}],
        "analysis": {"alpha": 0.01, "min_samples": 50, "mixture_sd": 0.03},
    }
    experiment = from_dict("exp", data)
    assert experiment.arms[1].model == ModelRef("cnn", version=2)
    assert experiment.shadows[0].sample_rate == 0.5
    assert experiment.analysis.alpha == 0.01
    assert from_dict("exp", to_dict(experiment)) == experiment
    assert digest(from_dict("exp", to_dict(experiment))) == digest(experiment)
    assert digest(from_dict("exp", data | {"description": "other"})) != digest(experiment)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (arms(A), "needs at least two arms"),
        (arms(A, A), "duplicate arm name 'a'"),
        (arms(A | {"weight": 0}, B | {"weight": 0}), "weights sum to 0"),
        (arms(A | {"weight": -1}, B), "weight must be a number >= 0"),
        (arms(A | {"version": 1}, B), "give a version or a label, not both"),
        (arms(A, B | {"version": 0}), "version must be a positive integer"),
        (arms(A | {"name": "bad name"}, B), "may only hold letters"),
        (arms(A, B) | {"shadows": [{"name": "b", "model": "cnn"}]}, "duplicate arm name 'b'"),
        (arms(A, B) | {"shadows": [{"name": "s", "model": "cnn", "sample_rate": 2}]}, "from 0"),
        (arms(A, B | {"colour": "red"}), "unknown key(s) colour"),
        (arms(A, B) | {"analysis": {"alpha": 2}}, "alpha"),
        (arms(A, B | {"weight": "heavy"}), "weight must be a int or float"),
    ],
)
def test_invalid_definitions_name_the_problem(data: dict[str, object], message: str) -> None:
    with pytest.raises(DefinitionError, match=None) as caught:
        from_dict("exp", data)
    assert message in str(caught.value)


def test_unknown_models_and_labels_are_named() -> None:
    with pytest.raises(DefinitionError, match="unknown model 'resnet'"):
        check_models(from_dict("exp", arms(A, B | {"model": "resnet"})), MODELS)
    with pytest.raises(DefinitionError, match="has no label 'beta'"):
        check_models(from_dict("exp", arms(A | {"label": "beta"}, B)), MODELS)


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text("[experiments.x\narms = 1")
    with pytest.raises(DefinitionError, match="not valid TOML"):
        load_file(path)
    assert load_file(tmp_path / "missing.toml") == []
