"""digits.idx and stages.decode: a reference IDX encoder, every rejection, fuzzing, one real run."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers.synthetic import IDX_TYPE_CODES, encode_idx  # a reference, not digits.idx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from digits.dataset import SPLIT_FILES
from digits.errors import DigitsError
from digits.files import load_arrays
from digits.idx import IdxError, parse_idx, parse_images, parse_labels, read_split
from stages import decode
from stages._cli import run

SOURCE = "data/raw/train-labels-idx1-ubyte"  # the `source` every unit test passes
MNIST_MIRROR = Path(__file__).parents[1] / ".." / "shared" / "mnist"
FUZZ = settings(max_examples=200, deadline=None)


def header(type_code: int, *sizes: int) -> bytes:
    return bytes([0, 0, type_code, len(sizes)]) + struct.pack(f">{len(sizes)}I", *sizes)


def make_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def make_labels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, count, dtype=np.uint8)


def rejection(parse, data: bytes, *fragments: str) -> str:
    """Assert `parse` raises an IdxError that names SOURCE and says each fragment; return it."""
    with pytest.raises(IdxError) as caught:
        parse(data, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --- round trips ------------------------------------------------------------------------------


def test_images_round_trip() -> None:
    images = make_images(3)
    parsed = parse_images(encode_idx(images), SOURCE)
    assert parsed.dtype == np.uint8
    assert parsed.shape == (3, 28, 28)
    np.testing.assert_array_equal(parsed, images)


def test_labels_round_trip() -> None:
    labels = np.arange(10, dtype=np.uint8)
    parsed = parse_labels(encode_idx(labels), SOURCE)
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, labels)


@pytest.mark.parametrize("dtype", list(IDX_TYPE_CODES))
def test_every_idx_type_round_trips_in_native_byte_order(dtype: np.dtype) -> None:
    array = np.array([[-1, 0, 1], [2, 100, 127]]).astype(dtype)
    parsed = parse_idx(encode_idx(array), SOURCE)
    assert parsed.dtype == dtype
    assert parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, array)


def test_big_endian_on_disk() -> None:
    parsed = parse_idx(header(0x0B, 2) + b"\x01\x02\xff\xfe", SOURCE)
    assert parsed.tolist() == [0x0102, -2]


def test_empty_array_is_valid_idx() -> None:
    assert parse_images(header(0x08, 0, 28, 28), SOURCE).shape == (0, 28, 28)
    assert parse_labels(header(0x08, 0), SOURCE).shape == (0,)


def test_uint8_result_is_a_read_only_view_and_never_aliases_a_mutable_buffer() -> None:
    data = encode_idx(make_labels(5))
    parsed = parse_idx(data, SOURCE)
    assert not parsed.flags.writeable

    buffer = bytearray(data)
    from_buffer = parse_idx(buffer, SOURCE)
    buffer[-1] = 9 - buffer[-1]
    assert from_buffer[-1] == data[-1]


def test_idx_error_is_a_pipeline_error() -> None:
    assert issubclass(IdxError, DigitsError)


# --- every rejection names the file and the check -----------------------------------------------


def test_empty_input_is_a_truncated_header() -> None:
    rejection(parse_idx, b"", "header truncated", "0 bytes", "4-byte")


def test_magic_number_shorter_than_four_bytes() -> None:
    rejection(parse_idx, b"\x00\x00\x08", "header truncated", "3 bytes", "4-byte")


@pytest.mark.parametrize("start", [b"\x00\x01", b"\x01\x00", b"\xff\xff"])
def test_nonzero_first_bytes(start: bytes) -> None:
    data = start + encode_idx(make_labels(3))[2:]
    rejection(parse_idx, data, "magic number", f"0x{start[0]:02X} 0x{start[1]:02X}", "0x00 0x00")


def test_gzip_file_gets_a_hint() -> None:
    data = gzip.compress(encode_idx(make_labels(3)))
    rejection(parse_idx, data, "magic number", "0x1F 0x8B", "decompress it first")


@pytest.mark.parametrize("type_code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unknown_type_code(type_code: int) -> None:
    data = bytes([0, 0, type_code, 1]) + struct.pack(">I", 1) + b"\x00"
    rejection(parse_idx, data, "unknown type code", f"0x{type_code:02X}", "0x08 (uint8)")


@pytest.mark.parametrize("ndim", [0, 33, 255])
def test_number_of_dimensions_out_of_range(ndim: int) -> None:
    data = bytes([0, 0, 0x08, ndim]) + b"\x00" * (4 * ndim)
    rejection(parse_idx, data, "number of dimensions", f"is {ndim}", "1..32")


def test_header_truncated_inside_the_dimension_sizes() -> None:
    data = encode_idx(make_images(1))[:13]  # magic + 2 of the 3 sizes + 1 byte
    rejection(parse_idx, data, "header truncated", "13 bytes", "3 dimension sizes", "16-byte")


def test_payload_too_short() -> None:
    data = encode_idx(make_labels(5))[:-2]
    rejection(parse_idx, data, "payload too short", "3 bytes", "(5,)", "exactly 5 bytes")


def test_payload_too_short_for_a_multibyte_type() -> None:
    data = header(0x0C, 3) + b"\x00" * 11
    rejection(parse_idx, data, "payload too short", "11 bytes", "int32", "exactly 12 bytes")


def test_trailing_bytes_are_refused() -> None:
    data = encode_idx(make_labels(5)) + b"\x00\x00\x00"
    rejection(parse_idx, data, "trailing bytes", "8 bytes", "exactly 5 bytes", "3 extra")


def test_sizes_too_large_even_for_an_empty_array() -> None:
    data = header(0x08, 0, 2**32 - 1, 2**32 - 1)
    rejection(parse_idx, data, "too large", "(0, 4294967295, 4294967295)")


def test_images_must_be_uint8() -> None:
    data = encode_idx(make_images(2).astype(np.float32))
    rejection(parse_images, data, "type code 0x0D (float32)", "images must be", "0x08 (uint8)")


@pytest.mark.parametrize("shape", [(784,), (2, 784), (2, 1, 28, 28)])
def test_images_must_have_three_dimensions(shape: tuple[int, ...]) -> None:
    data = encode_idx(np.zeros(shape, dtype=np.uint8))
    rejection(parse_images, data, f"{len(shape)} dimensions", str(shape), "allowed: 3")


@pytest.mark.parametrize(("rows", "columns"), [(27, 28), (28, 29), (32, 32), (0, 0)])
def test_images_must_be_28_by_28(rows: int, columns: int) -> None:
    data = encode_idx(np.zeros((2, rows, columns), dtype=np.uint8))
    rejection(parse_images, data, f"{rows}x{columns}", "allowed: 28x28")


def test_labels_must_be_uint8() -> None:
    data = encode_idx(make_labels(4).astype(np.int32))
    rejection(parse_labels, data, "type code 0x0C (int32)", "labels must be", "0x08 (uint8)")


def test_labels_must_have_one_dimension() -> None:
    data = encode_idx(np.zeros((4, 1), dtype=np.uint8))
    rejection(parse_labels, data, "2 dimensions", "(4, 1)", "allowed: 1")


def test_label_out_of_range() -> None:
    labels = np.array([0, 1, 2, 3, 4, 11, 6, 255, 8, 9], dtype=np.uint8)
    rejection(parse_labels, encode_idx(labels), "label 11 at index 5 is outside 0..9", "2 of 10")


def test_labels_file_parsed_as_images_and_vice_versa() -> None:
    rejection(parse_images, encode_idx(make_labels(4)), "1 dimensions", "allowed: 3")
    rejection(parse_labels, encode_idx(make_images(1)), "3 dimensions", "allowed: 1")


# --- read_split ---------------------------------------------------------------------------------


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    images_path, labels_path = folder / "images-idx3-ubyte", folder / "labels-idx1-ubyte"
    images_path.write_bytes(encode_idx(images))
    labels_path.write_bytes(encode_idx(labels))
    return images_path, labels_path


def test_read_split_returns_both_files_arrays(tmp_path: Path) -> None:
    images, labels = make_images(4), make_labels(4)
    read_images, read_labels = read_split(*write_split(tmp_path, images, labels))
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_read_split_counts_must_agree(tmp_path: Path) -> None:
    images_path, labels_path = write_split(tmp_path, make_images(4), make_labels(3))
    with pytest.raises(IdxError) as caught:
        read_split(images_path, labels_path)
    message = str(caught.value)
    for fragment in (str(images_path), str(labels_path), "image count 4", "label count 3"):
        assert fragment in message


def test_read_split_rejects_an_empty_split(tmp_path: Path) -> None:
    images_path, labels_path = write_split(tmp_path, make_images(0), make_labels(0))
    with pytest.raises(IdxError, match="holds 0 images; a split needs at least one"):
        read_split(images_path, labels_path)


def test_read_split_names_the_bad_file(tmp_path: Path) -> None:
    images_path, labels_path = write_split(tmp_path, make_images(2), make_labels(2))
    labels_path.write_bytes(encode_idx(np.array([1, 10], dtype=np.uint8)))
    with pytest.raises(IdxError) as caught:
        read_split(images_path, labels_path)
    assert str(caught.value).startswith(f"{labels_path}: label 10 at index 1")


def test_read_split_refuses_a_file_over_the_size_limit_before_reading(tmp_path: Path) -> None:
    images_path, labels_path = write_split(tmp_path, make_images(2), make_labels(2))
    size = images_path.stat().st_size
    assert read_split(images_path, labels_path, max_file_bytes=size)[0].shape == (2, 28, 28)
    with pytest.raises(IdxError) as caught:
        read_split(images_path, labels_path, max_file_bytes=size - 1)
    message = str(caught.value)
    assert message.startswith(f"{images_path}: file size {size:,} bytes is over the")
    assert f"{size - 1:,}-byte limit" in message


def test_read_split_missing_file(tmp_path: Path) -> None:
    images_path, _ = write_split(tmp_path, make_images(2), make_labels(2))
    missing = tmp_path / "nowhere-idx1-ubyte"
    with pytest.raises(IdxError, match="cannot read the file"):
        read_split(images_path, missing)


# --- properties ---------------------------------------------------------------------------------

SOME_TYPE_CODES = st.sampled_from([*IDX_TYPE_CODES.values(), 0x00, 0x0A, 0xFF])
SMALL_SIZES = st.one_of(st.integers(0, 4), st.sampled_from([28, 2**31, 2**32 - 1]))


@st.composite
def idx_like_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, often with a plausible header so parsing gets past the magic number."""
    kind = draw(st.sampled_from(["random", "magic", "header"]))
    tail = draw(st.binary(max_size=64))
    if kind == "random":
        return tail
    ndim = draw(st.integers(0, 5))
    magic = bytes([0, 0, draw(SOME_TYPE_CODES), ndim])
    if kind == "magic":
        return magic + tail
    sizes = draw(st.lists(SMALL_SIZES, min_size=ndim, max_size=ndim))
    return magic + struct.pack(f">{ndim}I", *sizes) + tail


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` after 1-3 flips, insertions, deletions or truncations, often in the header."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        end = len(data)
        position = draw(st.one_of(st.integers(0, min(end, 16)), st.integers(0, end)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if kind == "flip" and position < end:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[position:]
    return bytes(data)


VALID_IMAGES = st.integers(0, 3).flatmap(
    lambda count: hnp.arrays(np.uint8, (count, 28, 28)).map(encode_idx)
)
VALID_LABELS = hnp.arrays(np.uint8, st.integers(0, 20), elements=st.integers(0, 9)).map(encode_idx)
ANY_ARRAY = st.sampled_from(list(IDX_TYPE_CODES)).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0))
)
MUTATED_FILES = st.one_of(VALID_IMAGES, VALID_LABELS, ANY_ARRAY.map(encode_idx)).flatmap(mutated)


def parses_or_rejects(parse, data: bytes) -> np.ndarray | None:
    """The only allowed outcomes: an array, or an IdxError that names the file."""
    try:
        result = parse(data, SOURCE)
    except IdxError as error:
        message = str(error)
    else:
        message = None
    if message is not None:
        assert message.startswith(f"{SOURCE}: "), message
        return None
    assert isinstance(result, np.ndarray)
    if parse is parse_images:
        assert result.dtype == np.uint8
        assert result.shape[1:] == (28, 28)
    if parse is parse_labels:
        assert result.dtype == np.uint8
        assert result.ndim == 1
        assert not (result >= 10).any()
    return result


@FUZZ
@given(data=idx_like_bytes())
def test_arbitrary_bytes_parse_or_raise_idx_error(data: bytes) -> None:
    parses_or_rejects(parse_idx, data)


@pytest.mark.parametrize("parse", [parse_idx, parse_images, parse_labels])
@FUZZ
@given(data=MUTATED_FILES)
def test_mutated_files_parse_or_raise_idx_error(parse, data: bytes) -> None:
    parses_or_rejects(parse, data)


@FUZZ
@given(array=ANY_ARRAY)
def test_round_trip_any_type_and_shape(array: np.ndarray) -> None:
    encoded = encode_idx(array)
    parsed = parse_idx(encoded, SOURCE)
    assert parsed.dtype == array.dtype
    assert parsed.shape == array.shape
    assert parsed.tobytes() == array.tobytes()  # bit for bit: NaN payloads and -0.0 too
    assert encode_idx(parsed) == encoded


@FUZZ
@given(images=VALID_IMAGES, labels=VALID_LABELS)
def test_round_trip_mnist_files(images: bytes, labels: bytes) -> None:
    assert encode_idx(parse_images(images, SOURCE)) == images
    assert encode_idx(parse_labels(labels, SOURCE)) == labels


# --- the decode stage ---------------------------------------------------------------------------

SYNTHETIC_COUNTS = {"train": 5, "test": 3}


def write_raw(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A raw folder with small, valid IDX files for every split; returns what they hold."""
    folder.mkdir()
    arrays = {}
    for seed, (split, (images_name, labels_name)) in enumerate(SPLIT_FILES.items()):
        count = SYNTHETIC_COUNTS[split]
        images, labels = make_images(count, seed), make_labels(count, seed)
        (folder / images_name).write_bytes(encode_idx(images))
        (folder / labels_name).write_bytes(encode_idx(labels))
        arrays[split] = images, labels
    return arrays


def test_decode_writes_every_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = write_raw(tmp_path / "raw")
    out_dir = tmp_path / "interim"
    assert decode.main([str(tmp_path / "raw"), str(out_dir)]) == 0

    assert sorted(path.name for path in out_dir.iterdir()) == ["test.npz", "train.npz"]
    for split, (images, labels) in expected.items():
        read_images, read_labels = load_arrays(out_dir / f"{split}.npz", "images", "labels")
        assert read_images.dtype == np.uint8
        assert read_labels.dtype == np.uint8
        np.testing.assert_array_equal(read_images, images)
        np.testing.assert_array_equal(read_labels, labels)
    lines = capsys.readouterr().out.splitlines()
    train_labels = expected["train"][1]
    assert lines[0] == f"train: 5 images 28x28, labels {train_labels.min()}..{train_labels.max()}"
    assert lines[1].startswith("test: 3 images 28x28, labels ")


def test_decode_output_is_byte_identical_run_to_run(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw")
    for out in ("first", "second"):
        assert decode.main([str(tmp_path / "raw"), str(tmp_path / out)]) == 0
    for split in SPLIT_FILES:
        first = (tmp_path / "first" / f"{split}.npz").read_bytes()
        assert first == (tmp_path / "second" / f"{split}.npz").read_bytes()


def test_decode_bad_test_labels_leaves_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_raw(tmp_path / "raw")
    bad_labels = tmp_path / "raw" / SPLIT_FILES["test"][1]  # train decodes first, then this fails
    bad_labels.write_bytes(encode_idx(np.array([1, 2, 12], dtype=np.uint8)))
    out_dir = tmp_path / "interim"

    assert run(decode.main, [str(tmp_path / "raw"), str(out_dir)]) == 1

    assert f"error: {bad_labels}: label 12 at index 2 is outside 0..9" in capsys.readouterr().err
    assert not out_dir.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["raw"]  # no temp folder left either


def test_decode_failure_keeps_the_previous_output(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw")
    (tmp_path / "raw" / SPLIT_FILES["test"][0]).write_bytes(b"\x00\x00\x08")
    out_dir = tmp_path / "interim"
    out_dir.mkdir()
    (out_dir / "train.npz").write_bytes(b"previous")

    assert run(decode.main, [str(tmp_path / "raw"), str(out_dir)]) == 1

    assert [path.name for path in out_dir.iterdir()] == ["train.npz"]
    assert (out_dir / "train.npz").read_bytes() == b"previous"


@pytest.mark.slow
def test_decode_the_real_mnist_mirror(tmp_path: Path) -> None:
    if not MNIST_MIRROR.is_dir():
        pytest.skip(f"no MNIST mirror at {MNIST_MIRROR}")
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    for compressed in MNIST_MIRROR.glob("*.gz"):
        (raw_dir / compressed.stem).write_bytes(gzip.decompress(compressed.read_bytes()))
    out_dir = tmp_path / "interim"
    assert decode.main([str(raw_dir), str(out_dir)]) == 0

    expected_counts = {
        "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    }
    for split, counts in expected_counts.items():
        images, labels = load_arrays(out_dir / f"{split}.npz", "images", "labels")
        assert images.shape == (sum(counts), 28, 28)
        assert images.dtype == np.uint8
        assert labels.shape == (sum(counts),)
        assert labels.dtype == np.uint8
        assert np.bincount(labels, minlength=10).tolist() == counts
    assert sum(expected_counts["train"]) == 60_000
    assert sum(expected_counts["test"]) == 10_000
