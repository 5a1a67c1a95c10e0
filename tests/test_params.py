"""digits.params: the committed params.yaml is valid, and every kind of bad value is refused with a
message that names the key, the value and what is allowed; a stage stops before any work."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from digits.dataset import RAW_FILE_NAMES, save_split
from digits.errors import DigitsError
from digits.params import (
    SECTIONS,
    DownloadParams,
    ParamsError,
    PreprocessParams,
    TrainParams,
    load_dataset_source,
    load_section,
    parse_section,
    read_params_file,
)
from stages import explore as explore_stage
from stages import preprocess as preprocess_stage
from stages._cli import run

PROJECT = Path(__file__).parents[1]
PARAMS = PROJECT / "params.yaml"
DATASETS = PROJECT / "data" / "datasets.yaml"
with open(PARAMS, encoding="utf-8") as _file:
    COMMITTED: dict[str, Any] = yaml.safe_load(_file)
with open(DATASETS, encoding="utf-8") as _file:
    COMMITTED_SOURCES: dict[str, Any] = yaml.safe_load(_file)


def section(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of the committed section `name` with `changes` applied."""
    raw = copy.deepcopy(COMMITTED[name])
    raw.update(changes)
    return raw


def rejection(name: str, raw: object, *fragments: str) -> str:
    """Assert section `name` refuses `raw` with a ParamsError saying each fragment; return it."""
    with pytest.raises(ParamsError) as caught:
        parse_section(name, raw, SECTIONS[name])
    message = str(caught.value)
    assert message.startswith("invalid params:\n"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def write_params(tmp_path: Path, data: object, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- the committed file -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_committed_params_validate(name: str) -> None:
    params = load_section(PARAMS, name, SECTIONS[name])
    assert isinstance(params, SECTIONS[name])


def test_committed_params_hold_exactly_the_known_sections() -> None:
    assert sorted(COMMITTED) == sorted(SECTIONS)


def test_every_dvc_params_entry_names_a_known_section() -> None:
    dvc = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    named = [entry for stage in dvc["stages"].values() for entry in stage.get("params", [])]
    assert named, "dvc.yaml lists no params at all"
    assert set(named) <= set(SECTIONS), named


def test_committed_values_arrive_typed() -> None:
    train = load_section(PARAMS, "train", TrainParams)
    assert train.hidden_units == [128, 64]
    assert train.optimizer == "adam"
    assert isinstance(train.learning_rate, float)
    preprocess = load_section(PARAMS, "preprocess", PreprocessParams)
    assert preprocess.validation_fraction == 0.1
    download = load_section(PARAMS, "download", DownloadParams)
    source = load_dataset_source(DATASETS, download.dataset)
    assert sorted(source.files) == sorted(RAW_FILE_NAMES)


def test_params_are_frozen() -> None:
    train = load_section(PARAMS, "train", TrainParams)
    with pytest.raises(ValueError, match="frozen"):
        train.epochs = 1  # type: ignore[misc]


def test_params_error_is_a_pipeline_error() -> None:
    assert issubclass(ParamsError, DigitsError)


# --- unknown and missing keys -------------------------------------------------------------------


def test_an_unknown_key_is_refused() -> None:
    rejection("train", section("train", learing_rate=0.01), "train.learing_rate", "unknown key")


def test_unknown_key_message_lists_the_allowed_keys() -> None:
    rejection("preprocess", section("preprocess", sede=1), "validation_fraction", "seed")


def test_a_missing_key_is_named() -> None:
    raw = section("train")
    del raw["epochs"]
    message = rejection("train", raw, "train.epochs", "missing key")
    assert "(got" not in message  # nothing to show for a value that is not there


def test_every_problem_is_reported_on_its_own_line() -> None:
    message = rejection(
        "download",
        section("download", timeout_seconds="30", retries=1.5),
        "download.timeout_seconds: Input should be a valid number (got '30')",
        "download.retries: Input should be a valid integer (got 1.5)",
    )
    assert len(message.splitlines()) == 3


def test_section_that_is_not_a_mapping() -> None:
    rejection("train", [1, 2], "train:", "valid dictionary", "(got [1, 2])")


# --- wrong types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "allowed", "shown"),
    [
        ("epochs", "20", "valid integer", "'20'"),  # a string for a number
        ("epochs", True, "valid integer", "True"),  # a bool for an int
        ("epochs", 20.0, "valid integer", "20.0"),  # a float for an int
        ("batch_size", 128.5, "valid integer", "128.5"),
        ("learning_rate", "1e-3", "valid number", "'1e-3'"),  # YAML 1.1 reads 1e-3 as a string
        ("dropout_rate", True, "valid number", "True"),  # a bool for a float
        ("hidden_units", 128, "valid list", "128"),
        ("activation", 1, "'relu'", "1"),
    ],
)
def test_a_wrong_type_names_the_key_and_the_value(
    key: str, value: object, allowed: str, shown: str
) -> None:
    rejection("train", section("train", **{key: value}), f"train.{key}:", allowed, f"(got {shown})")


def test_wrong_type_inside_a_list_names_the_position() -> None:
    rejection("train", section("train", hidden_units=[128, "64"]), "train.hidden_units.1:", "'64'")


def test_integer_is_accepted_for_a_float() -> None:
    params = parse_section("train", section("train", learning_rate=1), TrainParams)
    assert params.learning_rate == 1.0


# --- out of range -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "value", "allowed"),
    [
        ("train", "epochs", -1, "greater than or equal to 1"),
        ("train", "epochs", 0, "greater than or equal to 1"),
        ("train", "dropout_rate", 1.0, "less than 1"),
        ("train", "dropout_rate", -0.1, "greater than or equal to 0"),
        ("train", "label_smoothing", 1.0, "less than 1"),
        ("train", "label_smoothing", -0.1, "greater than or equal to 0"),
        ("train", "learning_rate", 0.0, "greater than 0"),
        ("train", "seed", -1, "greater than or equal to 0"),
        ("train", "seed", 2**30 + 1, "less than or equal to 1073741824"),
        ("preprocess", "validation_fraction", 0, "greater than 0"),
        ("preprocess", "validation_fraction", 0.5, "less than 0.5"),
        ("explore", "sample_rows", 0, "greater than or equal to 1"),
        ("explore", "sample_columns", 21, "less than or equal to 20"),
        ("evaluate", "misclassified_examples", 101, "less than or equal to 100"),
        ("download", "retries", 11, "less than or equal to 10"),
        ("download", "timeout_seconds", 0, "greater than 0"),
    ],
)
def test_out_of_range(name: str, key: str, value: object, allowed: str) -> None:
    rejection(name, section(name, **{key: value}), f"{name}.{key}", allowed, f"(got {value!r})")


# --- the dataset sources file (data/datasets.yaml) ------------------------------------------------


def mnist_source(**changes: Any) -> dict[str, Any]:
    """A deep copy of the committed sources with `changes` applied to mnist's entry."""
    sources = copy.deepcopy(COMMITTED_SOURCES)
    sources["mnist"].update(changes)
    return sources


def source_rejection(tmp_path: Path, sources: object, *fragments: str) -> str:
    """Assert loading mnist from `sources` fails with a ParamsError saying each fragment."""
    path = write_params(tmp_path, sources, "datasets.yaml")
    with pytest.raises(ParamsError) as caught:
        load_dataset_source(path, "mnist")
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_committed_sources_hold_both_datasets_and_leave_params_alone() -> None:
    assert sorted(COMMITTED_SOURCES) == ["fashion-mnist", "mnist"]
    for name in COMMITTED_SOURCES:
        assert sorted(load_dataset_source(DATASETS, name).files) == sorted(RAW_FILE_NAMES)
    # Data identity is not a hyperparameter: no mirror or hash in params.yaml.
    assert sorted(COMMITTED["download"]) == [
        "backoff_seconds",
        "dataset",
        "retries",
        "timeout_seconds",
    ]


def test_empty_mirror_list(tmp_path: Path) -> None:
    source_rejection(
        tmp_path,
        mnist_source(mirrors=[]),
        "invalid dataset sources in ",
        "mnist.mirrors",
        "at least 1 item",
    )


def test_empty_mirror_string_names_its_position(tmp_path: Path) -> None:
    sources = mnist_source(mirrors=["https://example.org/", ""])
    source_rejection(tmp_path, sources, "mnist.mirrors.1:", "at least 1 character", "(got '')")


def test_a_bad_entry_of_another_dataset_is_refused_too(tmp_path: Path) -> None:
    sources = mnist_source()
    sources["fashion-mnist"]["mirrors"] = []
    source_rejection(tmp_path, sources, "fashion-mnist.mirrors", "at least 1 item")


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(ParamsError) as caught:
        load_dataset_source(DATASETS, "kmnist")
    message = str(caught.value)
    assert "download.dataset='kmnist' is not a dataset of" in message
    assert "['fashion-mnist', 'mnist']" in message


def test_sources_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ParamsError) as caught:
        load_dataset_source(missing, "mnist")
    assert str(caught.value) == f"cannot read {missing}: No such file or directory"


def test_mirror_variable_follows_the_dataset() -> None:
    assert parse_section("download", section("download"), DownloadParams).mirror_variable == (
        "MNIST_MIRROR"
    )
    fashion = parse_section(
        "download", section("download", dataset="fashion-mnist"), DownloadParams
    )
    assert fashion.mirror_variable == "FASHION_MNIST_MIRROR"
    fashion_files = load_dataset_source(DATASETS, fashion.dataset).files
    assert fashion_files["train-images-idx3-ubyte"].sha256.startswith("c59f468a")


@pytest.mark.parametrize(
    "digest",
    [
        "0" * 63,  # too short
        "0" * 65,  # too long
        "BA891046E6505D7AADCBBE25680A0738AD16AEC93BDE7F9B65E87A2FC25776DB",  # upper case
        "g" * 64,  # not hex
    ],
)
def test_bad_sha256(tmp_path: Path, digest: str) -> None:
    sources = mnist_source()
    sources["mnist"]["files"]["train-images-idx3-ubyte"]["sha256"] = digest
    source_rejection(
        tmp_path,
        sources,
        "mnist.files.train-images-idx3-ubyte.sha256",
        "^[0-9a-f]{64}$",
        repr(digest),
    )


def test_file_size_must_be_positive(tmp_path: Path) -> None:
    sources = mnist_source()
    sources["mnist"]["files"]["t10k-labels-idx1-ubyte"]["bytes"] = 0
    source_rejection(
        tmp_path, sources, "mnist.files.t10k-labels-idx1-ubyte.bytes", "greater than 0"
    )


# --- choices and cross-field rules --------------------------------------------------------------


def test_unknown_optimizer_lists_the_allowed_ones() -> None:
    rejection(
        "train",
        section("train", optimizer="adagrad"),
        "train.optimizer",
        "'adam', 'sgd' or 'rmsprop'",
        "(got 'adagrad')",
    )


def test_momentum_with_adam_is_rejected() -> None:
    rejection(
        "train",
        section("train", optimizer="adam", momentum=0.9),
        "momentum=0.9",
        "sgd and rmsprop only",
        "optimizer='adam'",
    )


def test_convs_per_block_gives_one_count_per_block_or_one_for_all() -> None:
    raw = section("train", conv_filters=[32, 64], convs_per_block=[1, 2])
    assert parse_section("train", raw, TrainParams).convs_per_block == [1, 2]
    rejection(
        "train",
        section("train", conv_filters=[32, 64], convs_per_block=[1, 2, 2]),
        "convs_per_block=[1, 2, 2] has 3 entries for 2 conv_filters entries",
        "one count per block, or a single number for all",
    )


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_momentum_with_sgd_and_rmsprop_is_accepted(optimizer: str) -> None:
    raw = section("train", optimizer=optimizer, momentum=0.9)
    assert parse_section("train", raw, TrainParams).momentum == 0.9


@pytest.mark.parametrize(
    "names",
    [
        RAW_FILE_NAMES[:3],  # one missing
        (*RAW_FILE_NAMES, "extra-file"),  # one too many
        (*RAW_FILE_NAMES[:3], "train-images-idx3-ubyte.gz"),  # one misspelt
    ],
)
def test_download_files_must_name_exactly_the_four_raw_files(
    tmp_path: Path, names: tuple[str, ...]
) -> None:
    pin = COMMITTED_SOURCES["mnist"]["files"]["train-images-idx3-ubyte"]
    sources = mnist_source(files={name: dict(pin) for name in names})
    source_rejection(
        tmp_path, sources, "files must name exactly", str(list(RAW_FILE_NAMES)), str(sorted(names))
    )


# --- the params file itself ---------------------------------------------------------------------


def test_a_missing_section_names_the_sections_there(tmp_path: Path) -> None:
    path = write_params(tmp_path, {"preprocess": COMMITTED["preprocess"]})
    with pytest.raises(ParamsError) as caught:
        load_section(path, "train", TrainParams)
    assert str(caught.value) == f"{path} has no section 'train'; it has ['preprocess']"


def test_a_file_that_is_not_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train: [1, 2\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="is not valid YAML") as caught:
        read_params_file(path)
    assert str(path) in str(caught.value)
    assert "line" in str(caught.value)  # PyYAML's position survives


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """Nine levels of nine aliases: 1 KB that stands for 9**9 (387 million) values."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    lines.append("train: *a8")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size < 1100

    started = time.monotonic()
    with pytest.raises(ParamsError) as caught:
        load_section(path, "train", TrainParams)

    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"{path} expands to more than 100,000 values (YAML aliases repeat them); refused"
    )


@pytest.mark.parametrize(
    ("text", "kind"), [("- 1\n- 2\n", "list"), ("just words\n", "str"), ("", "NoneType")]
)
def test_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError) as caught:
        read_params_file(path)
    assert str(caught.value) == f"{path} must hold a mapping of sections, got {kind}"


def test_a_missing_file_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ParamsError) as caught:
        load_section(path, "train", TrainParams)
    assert str(caught.value) == f"cannot read {path}: No such file or directory"


# --- a stage with bad params stops before any work ----------------------------------------------


@pytest.fixture
def stage_inputs(tmp_path: Path) -> Path:
    """Valid interim and processed inputs, so a failure can only come from params."""
    images = (np.arange(40 * 28 * 28) % 256).astype(np.uint8).reshape(40, 28, 28)
    labels = (np.arange(40) % 10).astype(np.uint8)
    for split in ("train", "test"):
        save_split(tmp_path / "interim", split, images, labels)
    one_hot = np.eye(10, dtype=np.float32)[labels]
    for split in ("train", "validation", "test"):
        save_split(tmp_path / "processed", split, images.astype(np.float32) / 255, one_hot)
    return tmp_path


@pytest.mark.parametrize(
    ("stage", "input_dir", "name", "key", "value"),
    [
        (preprocess_stage, "interim", "preprocess", "validation_fraction", 0.5),
        (preprocess_stage, "interim", "preprocess", "seed", "42"),
        (explore_stage, "processed", "explore", "sample_rows", 0),
    ],
)
def test_stage_with_bad_params_exits_1_naming_the_key_and_writes_nothing(
    stage_inputs: Path, capsys, stage, input_dir: str, name: str, key: str, value: object
) -> None:
    params = write_params(stage_inputs, {name: section(name, **{key: value})}, "bad.yaml")
    out_dir = stage_inputs / "out"
    argv = ["--params", str(params), str(stage_inputs / input_dir), str(out_dir)]

    assert run(stage.main, argv) == 1

    out, err = capsys.readouterr()
    assert err.startswith("error: invalid params:"), err
    assert f"{name}.{key}" in err
    assert f"(got {value!r})" in err
    assert out == ""
    assert not out_dir.exists()
    assert not [p for p in stage_inputs.iterdir() if p.name.startswith(".out.")]


def test_stage_with_missing_params_file_exits_1(stage_inputs: Path, capsys) -> None:
    missing = stage_inputs / "missing.yaml"
    out_dir = stage_inputs / "out"
    argv = ["--params", str(missing), str(stage_inputs / "interim"), str(out_dir)]
    assert run(preprocess_stage.main, argv) == 1
    assert capsys.readouterr().err == f"error: cannot read {missing}: No such file or directory\n"
    assert not out_dir.exists()


# --- train: model type, layers, augmentation, schedule, early stopping --------------------------


def augmentation(**changes: Any) -> dict[str, Any]:
    """The committed train.augmentation with `changes` applied."""
    return {**COMMITTED["train"]["augmentation"], **changes}


def test_unknown_architecture_lists_the_allowed_ones() -> None:
    rejection(
        "train",
        section("train", architecture="resnet"),
        "train.architecture:",
        "'mlp' or 'cnn'",
        "(got 'resnet')",
    )


def test_the_old_name_of_train_architecture_is_refused_naming_the_new_one() -> None:
    """`train.model` was renamed `train.architecture` (beside `--model PATH` it read as a file);
    a params file that still says `model:` gets the allowed keys, the new name among them."""
    raw = section("train")
    raw["model"] = raw.pop("architecture")
    rejection(
        "train",
        raw,
        "train.model: unknown key; allowed keys: seed, architecture, hidden_units",
        "train.architecture: missing key",
    )


@pytest.mark.parametrize(
    ("architecture", "key"), [("cnn", "conv_filters"), ("mlp", "hidden_units")]
)
def test_architecture_without_its_layers_is_rejected(architecture: str, key: str) -> None:
    message = rejection(
        "train",
        section("train", architecture=architecture, **{key: []}),
        f"train: architecture={architecture!r} needs at least one entry in {key}",
    )
    assert len(message.splitlines()) == 2


@pytest.mark.parametrize(
    ("architecture", "key"),
    [("cnn", "hidden_units"), ("mlp", "conv_filters"), ("mlp", "hidden_units")],
)
def test_layers_an_architecture_can_do_without_may_be_empty(architecture: str, key: str) -> None:
    # cnn: convolutions straight into the softmax; mlp: conv_filters is not used.
    raw = section("train", architecture=architecture, **{key: []})
    if architecture == "mlp" and key == "hidden_units":
        raw["hidden_units"] = [8]  # the one list an mlp needs
    assert parse_section("train", raw, TrainParams).architecture == architecture


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("max_shift", -0.1, "greater than or equal to 0"),
        ("max_shift", 0.6, "less than or equal to 0.5"),
        ("max_rotation_degrees", -5, "greater than or equal to 0"),
        ("max_rotation_degrees", 181, "less than or equal to 180"),
        ("max_zoom", -0.1, "greater than or equal to 0"),
        ("max_zoom", 1.0, "less than 1"),  # would zoom out to nothing
    ],
)
def test_augmentation_amount_out_of_range(key: str, value: float, allowed: str) -> None:
    rejection(
        "train",
        section("train", augmentation=augmentation(**{key: value})),
        f"train.augmentation.{key}:",
        allowed,
        f"(got {value!r})",
    )


@pytest.mark.parametrize("value", ["yes", "true", 1, None])
def test_augmentation_enabled_must_be_a_boolean(value: object) -> None:
    rejection(
        "train",
        section("train", augmentation=augmentation(enabled=value)),
        "train.augmentation.enabled:",
        "valid boolean",
        f"(got {value!r})",
    )


def test_yes_in_the_params_file_is_not_a_boolean(tmp_path: Path) -> None:
    # YAML 1.2, as DVC reads it: an unquoted yes is the string 'yes', not true.
    text = yaml.safe_dump({"train": section("train")}, sort_keys=False)
    text = text.replace("enabled: false", "enabled: yes")
    assert "enabled: yes\n" in text
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=r"train\.augmentation\.enabled: .*\(got 'yes'\)"):
        load_section(path, "train", TrainParams)


def test_unknown_augmentation_key_lists_the_allowed_ones() -> None:
    rejection(
        "train",
        section("train", augmentation=augmentation(flip=True)),
        "train.augmentation.flip: unknown key",
        "allowed keys: enabled, max_shift, max_rotation_degrees, max_zoom",
    )


def test_missing_augmentation_key() -> None:
    raw = section("train", augmentation=augmentation())
    del raw["augmentation"]["max_zoom"]
    rejection("train", raw, "train.augmentation.max_zoom: missing key")


def test_unknown_schedule_lists_the_allowed_ones() -> None:
    rejection(
        "train",
        section("train", schedule="linear"),
        "train.schedule:",
        "'constant', 'cosine', 'exponential' or 'one-cycle'",
        "(got 'linear')",
    )


def test_negative_early_stopping_patience() -> None:
    rejection(
        "train",
        section("train", early_stopping_patience=-1),
        "train.early_stopping_patience:",
        "greater than or equal to 0",
        "(got -1)",
    )


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"architecture": "resnet"}, ["train.architecture:", "(got 'resnet')"]),
        (
            {"architecture": "cnn", "conv_filters": []},
            ["train: architecture='cnn' needs at least one entry"],
        ),
        ({"schedule": "linear"}, ["train.schedule:", "(got 'linear')"]),
        ({"augmentation": augmentation(enabled="yes")}, ["train.augmentation.enabled:", "'yes'"]),
        ({"augmentation": augmentation(max_zoom=1.0)}, ["train.augmentation.max_zoom:", "1.0"]),
        ({"early_stopping_patience": -1}, ["train.early_stopping_patience:", "(got -1)"]),
    ],
    ids=["architecture", "cnn-without-convolutions", "schedule", "enabled", "max_zoom", "patience"],
)
def test_train_stage_with_bad_params_exits_1_and_writes_no_model(
    stage_inputs: Path, capsys, changes: dict, fragments: list[str]
) -> None:
    from stages import train as train_stage  # imports no TensorFlow until params are valid

    params = write_params(stage_inputs, {"train": section("train", **changes)}, "bad.yaml")
    out = stage_inputs / "out"
    argv = [
        str(stage_inputs / "processed"),
        *("--params", str(params)),
        *("--model", str(out / "model" / "model.keras")),
        *("--history", str(out / "plots" / "history.csv")),
        *("--curves", str(out / "plots" / "curves.png")),
        *("--metrics", str(out / "metrics" / "train.json")),
        *("--live", str(out / "dvclive")),
    ]

    assert run(train_stage.main, argv) == 1

    captured = capsys.readouterr()
    assert captured.err.startswith("error: invalid params:"), captured.err
    for fragment in fragments:
        assert fragment in captured.err, captured.err
    assert captured.out == ""
    assert not out.exists()


def test_train_stage_refuses_bad_params_before_importing_tensorflow(stage_inputs: Path) -> None:
    """In a fresh interpreter (this one may have TensorFlow loaded already by other tests)."""
    import subprocess
    import sys

    params = write_params(
        stage_inputs, {"train": section("train", architecture="resnet")}, "bad.yaml"
    )
    out = stage_inputs / "out"
    argv = [
        str(stage_inputs / "processed"),
        *("--params", str(params)),
        *("--model", str(out / "model.keras")),
        *("--history", str(out / "history.csv")),
        *("--curves", str(out / "curves.png")),
        *("--metrics", str(out / "train.json")),
        *("--live", str(out / "dvclive")),
    ]
    script = (
        "import sys\n"
        "from stages import train\n"
        "from stages._cli import run\n"
        "code = run(train.main, sys.argv[1:])\n"
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.stdout == "1 False False\n", result.stderr
    assert "train.architecture: Input should be 'mlp' or 'cnn' (got 'resnet')" in result.stderr
    assert not out.exists()
