"""digits.preprocess and stages.preprocess: scaling, one-hot labels, a stratified seeded split, and
a stage run on synthetic interim data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from digits.dataset import load_split, save_split, split_path
from digits.files import save_arrays
from digits.preprocess import one_hot, scale_images, split_train_validation
from stages import preprocess as preprocess_stage
from stages._cli import run


def tagged_images(ids: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 images that carry their id: pixel [0, 0] = id // 256, [0, 1] = id % 256."""
    images = np.zeros((len(ids), 28, 28), np.uint8)
    images[:, 0, 0] = ids // 256
    images[:, 0, 1] = ids % 256
    images[:, 5:20, 5:20] = (ids % 200 + 50)[:, None, None]  # some ink, so images differ
    return images


def image_ids(images: np.ndarray) -> np.ndarray:
    """The ids `tagged_images` wrote, from uint8 images or float images in [0, 1]."""
    if images.dtype != np.uint8:
        images = np.rint(images * 255).astype(np.int64)
    return images[:, 0, 0].astype(np.int64) * 256 + images[:, 0, 1]


def imbalanced_labels(count: int, seed: int = 0) -> np.ndarray:
    """Labels 0..9 with unequal shares (digit d about (d + 1) / 55 of the set), each present."""
    shares = np.arange(1, 11) / 55
    labels = np.random.default_rng(seed).choice(10, size=count, p=shares).astype(np.uint8)
    assert set(labels) == set(range(10))
    return labels


# --- scale_images -------------------------------------------------------------------------------


def test_scale_images_gives_float32_in_unit_range() -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    scaled = scale_images(images)
    assert scaled.dtype == np.float32
    assert scaled.shape == (5, 28, 28)
    assert scaled.min() >= 0.0
    assert scaled.max() <= 1.0


def test_scale_images_exact_values() -> None:
    scaled = scale_images(np.array([[0, 255, 128, 1]], dtype=np.uint8))
    assert scaled[0, 0] == 0.0
    assert scaled[0, 1] == 1.0
    assert scaled[0, 2] == np.float32(128) / np.float32(255)
    assert scaled[0, 2] == pytest.approx(0.50196, abs=1e-5)
    assert scaled[0, 3] == pytest.approx(1 / 255, rel=1e-6)


def test_scale_images_keeps_order_and_does_not_touch_its_input() -> None:
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    before = images.copy()
    scaled = scale_images(images)
    np.testing.assert_array_equal(images, before)
    np.testing.assert_array_equal(np.rint(scaled * 255).astype(np.uint8), images)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint16, np.int8])
def test_scale_images_rejects_non_uint8(dtype: type) -> None:
    with pytest.raises(ValueError, match="images must be uint8") as caught:
        scale_images(np.zeros((1, 28, 28), dtype=dtype))
    assert np.dtype(dtype).name in str(caught.value)


# --- one_hot ------------------------------------------------------------------------------------


def test_one_hot_shape_dtype_and_rows() -> None:
    labels = np.array([3, 0, 9, 3, 7], dtype=np.uint8)
    encoded = one_hot(labels)
    assert encoded.shape == (5, 10)
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded.sum(axis=1), np.ones(5))
    assert set(np.unique(encoded)) == {0.0, 1.0}
    np.testing.assert_array_equal(encoded.argmax(axis=1), labels)
    assert encoded[0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_one_hot_round_trips_every_digit() -> None:
    labels = np.random.default_rng(1).integers(0, 10, 500).astype(np.uint8)
    np.testing.assert_array_equal(one_hot(labels).argmax(axis=1), labels)


def test_one_hot_other_class_count_and_empty_input() -> None:
    assert one_hot(np.array([2, 0]), num_classes=3).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert one_hot(np.array([], dtype=np.uint8)).shape == (0, 10)


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        (np.array([0, 10], dtype=np.uint8), "0..10"),
        (np.array([255], dtype=np.uint8), "255..255"),
        (np.array([-1, 3], dtype=np.int64), "-1..3"),
    ],
)
def test_one_hot_rejects_out_of_range_labels(labels: np.ndarray, shown: str) -> None:
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9") as caught:
        one_hot(labels)
    assert f"got {shown}" in str(caught.value)


# --- split_train_validation ---------------------------------------------------------------------


def split(labels: np.ndarray, fraction: float = 0.1, seed: int = 42):
    ids = np.arange(len(labels))
    return split_train_validation(tagged_images(ids), labels, fraction, seed)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.05])
def test_split_sizes_match_the_fraction(fraction: float) -> None:
    labels = imbalanced_labels(1000)
    train_images, train_labels, validation_images, validation_labels = split(labels, fraction)
    assert len(validation_images) == len(validation_labels)
    assert len(train_images) == len(train_labels)
    assert len(train_images) + len(validation_images) == 1000
    assert abs(len(validation_labels) - 1000 * fraction) < 1


def test_split_is_stratified() -> None:
    labels = imbalanced_labels(1000)
    _, train_labels, _, validation_labels = split(labels, 0.1)
    train_counts = np.bincount(train_labels, minlength=10)
    validation_counts = np.bincount(validation_labels, minlength=10)
    expected = train_counts / train_counts.sum() * validation_counts.sum()
    # each digit's count in validation is within one sample of the train share
    assert np.all(np.abs(validation_counts - expected) <= 1), (validation_counts, expected)
    assert np.all(validation_counts > 0)


def test_split_keeps_every_sample_once_with_its_own_label() -> None:
    labels = imbalanced_labels(1000)
    train_images, train_labels, validation_images, validation_labels = split(labels)
    train_ids, validation_ids = image_ids(train_images), image_ids(validation_images)
    all_ids = np.concatenate([train_ids, validation_ids])
    assert sorted(all_ids.tolist()) == list(range(1000))  # none lost, none duplicated
    np.testing.assert_array_equal(train_labels, labels[train_ids])  # pairs stay together
    np.testing.assert_array_equal(validation_labels, labels[validation_ids])


def test_same_seed_same_split() -> None:
    labels = imbalanced_labels(1000)
    first, second = split(labels, seed=7), split(labels, seed=7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seed_different_split() -> None:
    labels = imbalanced_labels(1000)
    seven = set(image_ids(split(labels, seed=7)[2]).tolist())
    eight = set(image_ids(split(labels, seed=8)[2]).tolist())
    assert len(seven) == len(eight) == 100
    assert seven != eight


def test_split_keeps_dtypes() -> None:
    train_images, train_labels, validation_images, validation_labels = split(imbalanced_labels(200))
    assert train_images.dtype == validation_images.dtype == np.uint8
    assert train_labels.dtype == validation_labels.dtype == np.uint8


# --- stages.preprocess --------------------------------------------------------------------------

TRAIN_COUNT, TEST_COUNT = 300, 60


@pytest.fixture
def interim(tmp_path: Path) -> Path:
    """data/interim with train ids 0..299 (imbalanced digits) and test ids 1000..1059."""
    folder = tmp_path / "interim"
    train_labels = imbalanced_labels(TRAIN_COUNT, seed=3)
    test_labels = (np.arange(TEST_COUNT) % 10).astype(np.uint8)
    save_split(folder, "train", tagged_images(np.arange(TRAIN_COUNT)), train_labels)
    save_split(folder, "test", tagged_images(np.arange(1000, 1000 + TEST_COUNT)), test_labels)
    return folder


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(
        yaml.safe_dump({"preprocess": {"validation_fraction": 0.2, "seed": 5}}), encoding="utf-8"
    )
    return path


def run_stage(params: Path, interim: Path, out_dir: Path) -> int:
    return run(preprocess_stage.main, ["--params", str(params), str(interim), str(out_dir)])


def test_stage_writes_three_scaled_one_hot_splits(
    tmp_path: Path, interim: Path, params: Path, capsys
) -> None:
    out_dir = tmp_path / "processed"
    assert run_stage(params, interim, out_dir) == 0

    assert sorted(p.name for p in out_dir.iterdir()) == ["test.npz", "train.npz", "validation.npz"]
    sizes = {"train": 240, "validation": 60, "test": TEST_COUNT}
    loaded = {}
    for name, count in sizes.items():
        images, labels = load_split(out_dir, name)
        assert images.shape == (count, 28, 28), name
        assert images.dtype == np.float32, name
        assert images.min() >= 0.0, name
        assert images.max() <= 1.0, name
        assert labels.shape == (count, 10), name
        assert labels.dtype == np.float32, name
        np.testing.assert_array_equal(labels.sum(axis=1), np.ones(count))
        loaded[name] = (image_ids(images), labels.argmax(axis=1))

    out = capsys.readouterr().out
    assert out == "train: 240 images\nvalidation: 60 images\ntest: 60 images\n"

    # validation comes from the training set only; together they are the training set
    train_ids, validation_ids = loaded["train"][0], loaded["validation"][0]
    assert sorted([*train_ids, *validation_ids]) == list(range(TRAIN_COUNT))
    original_train_labels = load_split(interim, "train")[1]
    np.testing.assert_array_equal(loaded["train"][1], original_train_labels[train_ids])
    np.testing.assert_array_equal(loaded["validation"][1], original_train_labels[validation_ids])

    # the test split is untouched: same images, same labels, same order
    test_images, test_labels = load_split(interim, "test")
    processed_test_images = load_split(out_dir, "test")[0]
    np.testing.assert_array_equal(processed_test_images, scale_images(test_images))
    np.testing.assert_array_equal(loaded["test"][0], np.arange(1000, 1000 + TEST_COUNT))
    np.testing.assert_array_equal(loaded["test"][1], test_labels)


def test_stage_output_is_byte_identical_across_runs(
    tmp_path: Path, interim: Path, params: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_stage(params, interim, first) == 0
    assert run_stage(params, interim, second) == 0
    again = {p.name: p.read_bytes() for p in first.iterdir()}
    assert run_stage(params, interim, first) == 0  # rerun over its own previous output
    for name in ("train.npz", "validation.npz", "test.npz"):
        assert (first / name).read_bytes() == (second / name).read_bytes() == again[name], name
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_stage_with_a_missing_input_array_writes_nothing(
    tmp_path: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "interim"
    save_arrays(split_path(folder, "train"), images=tagged_images(np.arange(20)))  # no labels
    save_split(folder, "test", tagged_images(np.arange(5)), np.zeros(5, "u1"))
    out_dir = tmp_path / "processed"
    assert run_stage(params, folder, out_dir) == 1
    assert "missing arrays ['labels']" in capsys.readouterr().err
    assert not out_dir.exists()
