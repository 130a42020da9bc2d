"""The `classify` command, run in-process through `main()` and once as `python -m`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from imgclf_client.cli import main

from tests.client.fakes import FakeClassifier


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    paths = [tmp_path / "cat.png", tmp_path / "dog.jpg"]
    for path in paths:
        path.write_bytes(b"fake image bytes")
    return [str(path) for path in paths]


def test_prints_a_table_per_image(
    images: list[str], target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*images, "--model", "cnn", "--target", target]) == 0
    out = capsys.readouterr().out
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 2
    first = blocks[0].splitlines()
    assert first[0] == f"{images[0]}  (model cnn, version 4)"
    assert first[1].split() == ["rank", "class", "probability"]
    assert first[2].split() == ["1", "truck", f"{10 / 55:.4f}"]
    assert first[11].split() == ["10", "airplane", f"{1 / 55:.4f}"]
    assert first[12].split() == ["sum", "1.0000"]
    assert blocks[1].startswith(f"{images[1]}  (model cnn, version 4)")


def test_options_reach_the_request(
    images: list[str], target: str, servicer: FakeClassifier, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [images[0], "--model", "cnn", "--label", "stable", "--top-k", "2", "--target", target]
    assert main(argv) == 0
    (request,) = servicer.requests("Classify")
    assert (request.model.label, request.top_k) == ("stable", 2)
    assert request.encoded == b"fake image bytes"
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("(model cnn, version 3)")
    assert len(lines) == 4  # heading, column names, two classes and no sum


def test_timeout(
    images: list[str], target: str, servicer: FakeClassifier, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([images[0], "--model", "cnn", "--target", target, "--timeout", "3"]) == 0
    assert 2.0 < servicer.calls[0].time_remaining < 3.1
    servicer.reset()
    assert main([images[0], "--model", "cnn", "--target", target, "--timeout", "0"]) == 0
    assert servicer.calls[0].time_remaining > 1e6


def test_json(images: list[str], target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*images, "--model", "cnn", "--version", "7", "--target", target, "--json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["image"] for o in objects] == images
    assert {(o["model"], o["version"], len(o["scores"])) for o in objects} == {("cnn", 7, 10)}
    assert objects[0]["scores"][0] == {
        "index": 9,
        "name": "truck",
        "probability": pytest.approx(10 / 55),
    }


def test_errors_are_reported_per_image_and_the_rest_go_on(
    images: list[str], target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.png")
    assert main([missing, images[0], "--model", "cnn", "--target", target, "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: INVALID_INPUT: cannot read image file '{missing}'")
    assert [json.loads(line)["image"] for line in captured.out.splitlines()] == [images[0]]


def test_server_errors_show_code_and_details(
    images: list[str], target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*images, "--model", "resnet", "--target", target]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: NOT_FOUND: unknown model 'resnet' ({image})" for image in images
    ]


def test_target_from_the_environment(
    images: list[str],
    target: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IMGCLF_TARGET", target)
    assert main([images[0], "--model", "cnn"]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["x.png"],
        ["--model", "cnn"],
        ["x.png", "--model", "cnn", "--version", "1", "--label", "stable"],
        ["x.png", "--model", "cnn", "--top-k", "-1"],
        ["x.png", "--model", "cnn", "--timeout", "-1"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert "usage: classify" in capsys.readouterr().err


def test_python_dash_m(images: list[str], target: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "imgclf_client", images[0], "--model", "cnn", "--json"],
        env={**os.environ, "IMGCLF_TARGET": target},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert (result["image"], result["model"], result["version"]) == (images[0], "cnn", 4)
