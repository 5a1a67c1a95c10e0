"""Which model digits-predict and digits-serve load, and what they say about it
(digits.app.artifacts).

Each test works in a folder laid out like a clone of the project (data/app-model/model.keras,
data/model/model.keras, metrics/, dvc.lock, app-model/dvc.lock) and runs there, as a person
runs the commands. The
model files are the tiny model trained for the tests (conftest.py), or any bytes where the
file's content is all that matters (the name, md5 and accuracy need no TensorFlow).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from digits.app.artifacts import (
    APP_FOLDER,
    APP_MODEL,
    APP_MODEL_FILE,
    PIPELINE_MODEL,
    PROJECT_MODELS,
    ProjectModel,
    app_training_time,
    default_model,
    read_model_info,
)
from digits.app.cli import predict_main, serve_main
from digits.errors import DigitsError
from tools.serving import serving

PROJECT = Path(__file__).parents[1]
ACCURACY = {APP_MODEL: 0.9876, PIPELINE_MODEL: 0.9543}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def lock_entry(path: Path, data: bytes) -> dict:
    return {"path": str(path), "hash": "md5", "md5": md5(data), "size": len(data)}


def make_clone(root: Path, models: dict[ProjectModel, bytes]) -> Path:
    """`root` laid out as a clone after `dvc repro --all-pipelines`: each model's file and
    metrics file, and its pipeline's lock recording them (its train stage wrote the model; its
    evaluate stage read it and wrote the metrics)."""
    for model, content in models.items():
        stages = {}
        metrics = json.dumps({"test": {"accuracy": ACCURACY[model], "loss": 0.05}}).encode()
        for path, data in ((model.path, content), (model.metrics, metrics)):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        stages[model.train_stage] = {"outs": [lock_entry(model.path, content)]}
        stages[model.evaluate_stage] = {
            "deps": [
                {"path": "data/processed", "hash": "md5", "md5": "0" * 32 + ".dir"},
                lock_entry(model.path, content),
            ],
            "outs": [lock_entry(model.metrics, metrics)],
        }
        if model is APP_MODEL:  # card-app's folder: a copy of the model and its card
            write_card(root / APP_FOLDER, content, ACCURACY[model])
        lock = {"schema": "2.0", "stages": stages}
        (root / model.lock).parent.mkdir(parents=True, exist_ok=True)
        (root / model.lock).write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")
    return root


def write_card(folder: Path, content: bytes, accuracy: float) -> None:
    """The recogniser's folder as card-app writes it (the card's fields the app reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.keras").write_bytes(content)
    card = {"artifact": "digits-recogniser", "md5": md5(content), "test": {"accuracy": accuracy}}
    (folder / "model.json").write_text(json.dumps(card), encoding="utf-8")


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder, the current one for the test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def option(cmd: str, name: str) -> str:
    """The value of `--name` in a stage's command."""
    words = cmd.split()
    return words[words.index(name) + 1]


def test_the_models_are_dvc_yaml_artifacts_made_and_evaluated_by_their_stages() -> None:
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    assert {model.artifact for model in PROJECT_MODELS} == set(dvc_yaml["artifacts"])
    assert APP_MODEL.address("train-app") == "app-model/dvc.yaml:train-app"
    assert PIPELINE_MODEL.address("train") == "train"
    assert dvc_yaml["artifacts"][APP_MODEL.artifact]["path"] == str(APP_FOLDER)
    assert dvc_yaml["artifacts"][PIPELINE_MODEL.artifact]["path"] == str(PIPELINE_MODEL.path)
    card = yaml.safe_load((PROJECT / APP_MODEL.pipeline).read_text(encoding="utf-8"))["stages"]
    assert option(card["card-app"]["cmd"], "--card") == str(APP_FOLDER)
    assert option(card["card-app"]["cmd"], "--name") == APP_MODEL.artifact
    for model in PROJECT_MODELS:
        stages = yaml.safe_load((PROJECT / model.pipeline).read_text(encoding="utf-8"))["stages"]
        train, evaluate = (stages[s] for s in (model.train_stage, model.evaluate_stage))
        assert option(train["cmd"], "--model") == str(model.path)
        assert str(model.path) in [next(iter(out)) for out in train["outs"]]
        assert option(evaluate["cmd"], "--model") == str(model.path)
        assert str(model.path) in evaluate["deps"]
        assert option(evaluate["cmd"], "--metrics") == str(model.metrics)
        assert str(model.metrics) in [next(iter(out)) for out in evaluate["outs"]]


# --- name, version and test accuracy -----------------------------------------------------------


def test_a_model_dvc_evaluated_has_its_name_md5_and_test_accuracy(clone: Path) -> None:
    make_clone(clone, {APP_MODEL: b"app model", PIPELINE_MODEL: b"pipeline model"})

    app, pipeline = read_model_info(APP_MODEL_FILE), read_model_info(PIPELINE_MODEL.path)

    assert app.line() == (
        f"digits-recogniser (data/app-model/recogniser/model.keras), md5 {md5(b'app model')[:8]}"
        ", test accuracy 0.9876 (model.json)"
    )
    assert pipeline.line() == (
        f"digits-classifier (data/model/model.keras), md5 {md5(b'pipeline model')[:8]}, "
        "test accuracy 0.9543 (metrics/evaluate.json)"
    )
    assert app.as_json() == {
        "name": "digits-recogniser",
        "path": "data/app-model/recogniser/model.keras",
        "md5": md5(b"app model"),
        "test_accuracy": 0.9876,
        "description": app.line(),
    }


def test_metrics_of_another_model_are_stale_not_shown(clone: Path) -> None:
    """The model was retrained (or replaced) but evaluate-app has not run since."""
    make_clone(clone, {APP_MODEL: b"app model"})
    APP_MODEL.path.write_bytes(b"app model, retrained")

    info = read_model_info(APP_MODEL.path)

    assert info.accuracy is None
    assert info.line() == (
        f"digits-recogniser (data/app-model/model.keras), md5 {md5(b'app model, retrained')[:8]}"
        f", test accuracy unknown: metrics/app-model/evaluate.json is for md5 "
        f"{md5(b'app model')[:8]}, not this file (run `dvc repro app-model/dvc.yaml:evaluate-app`)"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("no lock", "no evaluate-app stage in app-model/dvc.lock"),
        ("no evaluate-app in the lock", "no evaluate-app stage in app-model/dvc.lock"),
        ("metrics deleted", "metrics/app-model/evaluate.json is missing or unreadable"),
        (
            "metrics edited",
            "metrics/app-model/evaluate.json is not the file app-model/dvc.lock records",
        ),
    ],
)
def test_an_accuracy_dvc_lock_does_not_vouch_for_is_unknown(
    clone: Path, change: str, reason: str
) -> None:
    make_clone(clone, {APP_MODEL: b"app model"})
    lock = clone / "app-model" / "dvc.lock"
    if change == "no lock":
        lock.unlink()
    elif change == "no evaluate-app in the lock":
        stages = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]
        del stages["evaluate-app"]
        lock.write_text(yaml.safe_dump({"stages": stages}), encoding="utf-8")
    elif change == "metrics deleted":
        APP_MODEL.metrics.unlink()
    else:
        APP_MODEL.metrics.write_text(json.dumps({"test": {"accuracy": 0.999}}), encoding="utf-8")

    info = read_model_info(APP_MODEL.path)

    assert info.name == "digits-recogniser"
    assert info.accuracy is None
    assert info.accuracy_note == (
        f"test accuracy unknown: {reason} (run `dvc repro app-model/dvc.yaml:evaluate-app`)"
    )


def test_a_copy_is_known_by_its_content_and_any_other_file_by_its_name(
    clone: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    make_clone(clone, {APP_MODEL: b"app model"})
    elsewhere = tmp_path_factory.mktemp("downloads")
    copy = elsewhere / "model.keras"  # as `dvc artifacts get ... digits-recogniser` leaves it
    copy.write_bytes(b"app model")
    other = elsewhere / "mine.keras"
    other.write_bytes(b"a model of my own")

    assert read_model_info(copy).line() == (
        f"digits-recogniser ({copy}), md5 {md5(b'app model')[:8]}, "
        "test accuracy 0.9876 (metrics/app-model/evaluate.json)"
    )
    assert read_model_info(other).line() == (
        f"mine.keras ({other}), md5 {md5(b'a model of my own')[:8]}, "
        "test accuracy unknown: no model card (model.json) beside it, and not a model that "
        "app-model/dvc.lock or dvc.lock here records"
    )


def test_the_recogniser_folder_outside_a_clone_reports_its_card(
    clone: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """As `dvc artifacts get REPO digits-recogniser` leaves it: the folder, no dvc.lock."""
    make_clone(clone, {APP_MODEL: b"app model"})
    elsewhere = tmp_path_factory.mktemp("downloads")
    shutil.copytree(clone / APP_FOLDER, elsewhere / "recogniser")
    (clone / "app-model" / "dvc.lock").unlink()  # nothing of the clone vouches for it
    model = elsewhere / "recogniser" / "model.keras"

    info = read_model_info(model)
    assert (info.name, info.accuracy) == ("digits-recogniser", 0.9876)
    assert info.accuracy_note == "test accuracy 0.9876 (model.json)"

    model.write_bytes(b"another model")  # the card is not this file's
    stale = read_model_info(model)
    assert (stale.name, stale.accuracy) == ("model.keras", None)
    assert stale.accuracy_note == (
        f"test accuracy unknown: {model.with_name('model.json')} is for md5 "
        f"{md5(b'app model')[:8]}, not this file"
    )
    model.with_name("model.json").write_text("{}", encoding="utf-8")
    assert "not a model card" in read_model_info(model).accuracy_note


# --- the default model ------------------------------------------------------------------------


def test_the_default_is_the_app_model_when_it_exists(clone: Path) -> None:
    make_clone(clone, {APP_MODEL: b"app model", PIPELINE_MODEL: b"pipeline model"})
    assert default_model().path == APP_MODEL_FILE
    assert default_model().note is None


def test_without_the_app_model_the_default_is_the_pipelines_with_a_note(clone: Path) -> None:
    make_clone(clone, {PIPELINE_MODEL: b"pipeline model"})

    choice = default_model()

    assert choice.path == PIPELINE_MODEL.path
    assert choice.note == (
        "note: the app's model (data/app-model/recogniser/model.keras) is missing: using the "
        "pipeline's MLP (data/model/model.keras), which reads handwriting less well. Get the "
        "better one with `dvc pull app-model/dvc.yaml:card-app` (from the project's DVC remote) "
        f"or `make app-model` (trains it: {app_training_time()})."
    )


def test_the_training_time_is_the_sweep_s_measurement(clone: Path) -> None:
    assert (
        app_training_time() == "its training time is the app-model row of "
        "docs/experiments.json in a clone"
    )
    (clone / "docs").mkdir()
    shutil.copy(PROJECT / "docs" / "experiments.json", clone / "docs")
    (clone / "app-model").mkdir(exist_ok=True)
    shutil.copy(PROJECT / "app-model" / "recipe.yaml", clone / "app-model")
    row = json.loads((PROJECT / "docs/experiments.json").read_text())["experiments"]["app-model"]
    assert app_training_time() == (
        f"{row['seconds']:.0f} s ({row['epochs']} epochs) on {row['runner']} "
        "(docs/experiments.json, row app-model)"
    )

    recipe = yaml.safe_load((clone / "app-model" / "recipe.yaml").read_text(encoding="utf-8"))
    recipe["train"]["epochs"] += 1  # a recipe the sweep has not timed yet
    (clone / "app-model" / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert app_training_time() == (
        "not timed: the app-model row of docs/experiments.json trained another recipe than "
        "app-model/recipe.yaml"
    )


def test_without_either_model_the_error_names_both_and_how_to_get_them(clone: Path) -> None:
    with pytest.raises(DigitsError) as error:
        default_model()
    message = str(error.value)
    assert message.startswith(
        "no model: neither data/app-model/recogniser/model.keras (the app's model: "
        "`dvc pull app-model/dvc.yaml:card-app`"
    )
    for words in (
        "`make app-model`",
        "nor data/model/model.keras (the pipeline's MLP: `make repro` or `dvc pull`)",
        "or pass --model PATH",
    ):
        assert words in message


# --- digits-predict and digits-serve ----------------------------------------------------------


def digit_png(path: Path) -> Path:
    sheet = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(sheet).line([(60, 40), (140, 40), (90, 170)], fill=20, width=16)
    sheet.save(path)
    return path


def test_predict_loads_the_app_model_by_default_and_says_which(
    clone: Path, model_file: Path, capsys: pytest.CaptureFixture
) -> None:
    # The pipeline's file is not a model at all: only loading the app's can succeed.
    make_clone(clone, {APP_MODEL: model_file.read_bytes(), PIPELINE_MODEL: b"not a model"})
    image = digit_png(clone / "seven.png")

    assert predict_main([str(image)]) == 0

    out, err = capsys.readouterr()
    assert out.startswith(f"{image}: ")
    assert err == (
        f"model: digits-recogniser (data/app-model/recogniser/model.keras), md5 "
        f"{md5(model_file.read_bytes())[:8]}, test accuracy 0.9876 (model.json)\n"
    )

    assert predict_main([str(image), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # --json: nothing but the results
    assert [entry["file"] for entry in json.loads(out)] == [str(image)]


def test_predict_falls_back_to_the_pipeline_model_with_a_note(
    clone: Path, model_file: Path, capsys: pytest.CaptureFixture
) -> None:
    make_clone(clone, {PIPELINE_MODEL: model_file.read_bytes()})
    image = digit_png(clone / "seven.png")

    assert predict_main([str(image)]) == 0
    out, err = capsys.readouterr()
    note, line = err.splitlines()
    assert note == default_model().note
    assert line.startswith("model: digits-classifier (data/model/model.keras), md5 ")
    assert out.startswith(f"{image}: ")

    assert predict_main([str(image), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [note]  # the note still says it is not the app's model
    assert len(json.loads(out)) == 1


def test_without_any_model_both_commands_fail_naming_both(
    clone: Path, capsys: pytest.CaptureFixture
) -> None:
    image = digit_png(clone / "seven.png")
    for run in (lambda: predict_main([str(image)]), lambda: serve_main(["--port", "0"])):
        assert run() == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.startswith("error: no model: neither data/app-model/recogniser/model.keras "), (
            err
        )
        assert "`make repro` or `dvc pull`" in err


def test_an_explicit_model_is_used_as_given(
    clone: Path, model_file: Path, capsys: pytest.CaptureFixture
) -> None:
    make_clone(clone, {APP_MODEL: model_file.read_bytes()})
    image = digit_png(clone / "seven.png")

    # No fallback to the app's model when the file asked for is missing.
    assert predict_main([str(image), "--model", str(PIPELINE_MODEL.path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: model file {PIPELINE_MODEL.path} does not exist"), err

    copy = clone / "elsewhere.keras"
    copy.write_bytes(model_file.read_bytes())
    assert predict_main([str(image), "--model", str(copy)]) == 0
    _, err = capsys.readouterr()
    assert err.startswith(f"model: digits-recogniser ({copy}), md5 "), err


@pytest.mark.parametrize("main", [predict_main, serve_main])
def test_help_names_the_model_the_command_would_load(
    main, clone: Path, model_file: Path, capsys: pytest.CaptureFixture
) -> None:
    def help_text() -> str:
        with pytest.raises(SystemExit) as stopped:
            main(["--help"])
        assert stopped.value.code == 0
        # argparse wraps lines, at spaces and after hyphens: compare without any whitespace.
        return "".join(capsys.readouterr().out.split())

    def squeezed(text: str) -> str:
        return "".join(text.split())

    assert squeezed("Without --model, here: no model: neither data/app-model/recogniser/") in (
        help_text()
    )

    make_clone(clone, {PIPELINE_MODEL: model_file.read_bytes()})
    text = help_text()
    assert (
        squeezed("Without --model, here: digits-classifier (data/model/model.keras), md5") in text
    )
    assert squeezed("test accuracy 0.9543 (metrics/evaluate.json). note: the app's model") in text

    make_clone(clone, {APP_MODEL: b"app model", PIPELINE_MODEL: model_file.read_bytes()})
    assert (
        squeezed(
            "Without --model, here: digits-recogniser (data/app-model/recogniser/model.keras), "
            f"md5 "
            f"{md5(b'app model')[:8]}, test accuracy 0.9876 (model.json)."
        )
        in help_text()
    )


def test_serve_says_which_model_before_its_url_and_answers_it(
    clone: Path, model_file: Path
) -> None:
    make_clone(clone, {APP_MODEL: model_file.read_bytes(), PIPELINE_MODEL: b"not a model"})
    expected = read_model_info(APP_MODEL_FILE)

    with serving(None, cwd=clone) as server:  # digits-serve --port 0, no --model
        connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        try:
            connection.request("GET", "/api/model")
            response = connection.getresponse()
            answer = json.loads(response.read())
            connection.request("GET", "/openapi.json")
            paths = json.loads(connection.getresponse().read())["paths"]
        finally:
            connection.close()

    assert server.said == f"model: {expected.line()}\n"
    assert response.status == 200
    assert answer == expected.as_json()
    assert answer["test_accuracy"] == ACCURACY[APP_MODEL]
    assert set(paths) == {"/api/predict", "/api/model"}
