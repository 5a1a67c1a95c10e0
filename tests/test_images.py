"""digits.app.images: pictures of digits brought to MNIST's conventions, and the checks on files and
bytes from outside. No TensorFlow.

Known cases: digits drawn with Pillow on "paper" (thick strokes, off-centre, JPEG-compressed like a
scan) must come out centred (centre of mass within half a pixel of (14, 14), as in every MNIST
training image), 20 px on their longer side with their aspect ratio kept, the same whichever the
polarity; blank, oversized, damaged and non-image inputs are rejected with a message naming them;
what one image can cost to decode is bounded (JPEG scans, a CPU limit), whatever its bytes.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from scipy import ndimage

from digits.app import images
from digits.app.images import (
    CENTRE,
    DIGIT_BOX,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    MAX_JPEG_MARKERS,
    MAX_JPEG_SCANS,
    WORKING_SIDE,
    ImageError,
    ImageHeader,
    decode_image,
    read_header,
    read_image,
    stroke_width,
    to_mnist,
)
from digits.errors import DigitsError
from tools.serving import exif_bomb_jpeg, huge_png, progressive_jpeg

# A "7" with a crossbar, as strokes in a unit box (x right, y down).
SEVEN = [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)], [(0.3, 0.5), (0.8, 0.5)]]


def draw(
    strokes: list,
    box: tuple[float, float, float, float],
    size: tuple[int, int] = (300, 400),
    line_width: int = 24,
    ink: int = 30,
    paper: int = 235,
) -> Image.Image:
    """Strokes scaled into `box` (left, top, width, height) on a `size` sheet, dark on light."""
    left, top, width, height = box
    image = Image.new("L", size, paper)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [(left + x * width, top + y * height) for x, y in stroke]
        pen.line(points, fill=ink, width=line_width, joint="curve")
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def bounding_box(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the non-zero pixels."""
    rows = np.flatnonzero(image.any(axis=1))
    columns = np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


def assert_mnist_like(image: np.ndarray) -> None:
    assert image.shape == (28, 28)
    assert image.dtype == np.float32
    assert image.min() == 0
    assert 0.9 < image.max() <= 1
    assert max(bounding_box(image)) == DIGIT_BOX
    centre = np.array(ndimage.center_of_mass(image))
    assert np.all(np.abs(centre - CENTRE) <= 0.5), f"centre of mass at {centre}"


@pytest.fixture
def scanned_seven() -> Image.Image:
    """A 7 in the top-left corner of a 300x400 sheet, through JPEG at quality 75."""
    sheet = draw(SEVEN, box=(20, 30, 90, 150))
    return decode_image(encode(sheet.convert("RGB"), "JPEG", quality=75), "scan.jpg")


def test_an_off_centre_scanned_digit_is_centred(scanned_seven: Image.Image) -> None:
    result = to_mnist(scanned_seven)

    assert_mnist_like(result)
    height, width = bounding_box(result)
    assert height == 20
    assert 11 <= width <= 14


def test_the_centre_matches_mnist_wherever_the_digit_sits() -> None:
    results = [
        to_mnist(draw(SEVEN, box=(left, top, 90, 150)))
        for left, top in [(20, 30), (190, 30), (20, 220), (100, 120), (188, 228)]
    ]
    for result in results:
        assert_mnist_like(result)
    # Only the sub-pixel rounding of the position can differ.
    assert all(np.abs(result - results[3]).max() < 0.6 for result in results)


def test_light_ink_on_dark_gives_the_same_result_as_dark_on_light() -> None:
    dark_on_light = draw(SEVEN, box=(40, 60, 120, 200))
    light_on_dark = ImageOps.invert(dark_on_light)

    np.testing.assert_allclose(to_mnist(light_on_dark), to_mnist(dark_on_light), atol=1e-6)
    assert_mnist_like(to_mnist(light_on_dark))


def test_colour_and_grey_give_the_same_result() -> None:
    grey = draw(SEVEN, box=(40, 60, 120, 200))
    blue_ink = ImageOps.colorize(grey, black=(20, 30, 120), white=(250, 250, 245))

    assert blue_ink.mode == "RGB"
    np.testing.assert_allclose(to_mnist(blue_ink), to_mnist(grey), atol=0.05)


def test_the_aspect_ratio_is_kept() -> None:
    tall_one = draw([[(0.5, 0.0), (0.5, 1.0)]], box=(150, 50, 0, 300), line_width=40)
    wide_bar = draw([[(0.0, 0.5), (1.0, 0.5)]], box=(30, 200, 240, 0), line_width=40)
    half_block = Image.new("L", (300, 400), 255)
    ImageDraw.Draw(half_block).rectangle((50, 100, 249, 199), fill=0)  # 200 x 100

    one = to_mnist(tall_one)
    assert bounding_box(one)[0] == 20
    assert 2 <= bounding_box(one)[1] <= 4
    assert bounding_box(to_mnist(wide_bar)) in [(3, 20), (4, 20)]  # 40 x 280
    assert bounding_box(to_mnist(half_block)) == (10, 20)


def test_a_mnist_image_keeps_its_place_size_and_ink() -> None:
    """Only the faintest edge pixels (below the noise level) are cleared."""
    once = to_mnist(draw(SEVEN, box=(40, 60, 120, 200)))
    twice = to_mnist(once)

    assert_mnist_like(twice)
    assert bounding_box(twice) == bounding_box(once)
    strong = once >= images.NOISE_LEVEL
    np.testing.assert_allclose(twice[strong], once[strong], atol=1e-6)
    assert np.all(twice[~strong] == 0)


def test_a_small_digit_is_enlarged_to_the_box() -> None:
    tiny = draw(SEVEN, box=(140, 190, 9, 15), line_width=3)

    assert_mnist_like(to_mnist(tiny))


@pytest.mark.parametrize("blank", ["white", "black", "grey", "noisy paper", "transparent"])
def test_a_blank_image_is_rejected(blank: str) -> None:
    rng = np.random.default_rng(0)
    picture = {
        "white": Image.new("L", (200, 200), 255),
        "black": Image.new("RGB", (200, 200), (0, 0, 0)),
        "grey": Image.new("L", (200, 200), 128),
        "noisy paper": Image.fromarray(
            np.clip(rng.normal(230, 4, (400, 300)), 0, 255).astype(np.uint8)
        ),
        "transparent": Image.new("RGBA", (200, 200), (0, 0, 0, 0)),
    }[blank]

    with pytest.raises(ImageError, match=r"^empty.png: blank image: no ink"):
        to_mnist(picture, "empty.png")


def test_faint_noise_and_specks_of_dust_are_ignored() -> None:
    clean = draw(SEVEN, box=(40, 60, 120, 200), paper=230)
    rng = np.random.default_rng(1)
    noisy = np.asarray(clean, np.float32) + rng.normal(0, 5, (400, 300))
    dusty = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    ImageDraw.Draw(dusty).ellipse((250, 350, 254, 354), fill=30)  # far from the digit

    assert bounding_box(to_mnist(dusty)) == bounding_box(to_mnist(clean))
    assert np.abs(to_mnist(dusty) - to_mnist(clean)).max() < 0.2


def test_hairline_strokes_are_widened_to_mnist_width() -> None:
    hairline = draw(SEVEN, box=(40, 40, 220, 320), line_width=2)  # 0.6% of the height
    bold = draw(SEVEN, box=(40, 40, 220, 320), line_width=50)

    assert stroke_width(to_mnist(hairline)) >= images.MIN_STROKE_WIDTH
    assert stroke_width(to_mnist(hairline)) <= 4.0
    # 50 px in a 370 px tall digit: 2.7 px at 20 px; thicker than MNIST's thin end, left alone.
    assert 2.4 <= stroke_width(to_mnist(bold)) <= 3.4


def test_a_transparent_background_counts_as_paper() -> None:
    on_paper = draw(SEVEN, box=(40, 60, 120, 200), ink=0, paper=255)
    alpha = ImageOps.invert(on_paper)  # strokes opaque, the rest transparent
    black_strokes = Image.new("RGBA", on_paper.size, (0, 0, 0, 0))
    black_strokes.putalpha(alpha)
    white_strokes = Image.new("RGBA", on_paper.size, (255, 255, 255, 0))
    white_strokes.putalpha(alpha)

    expected = to_mnist(on_paper)
    for picture in (black_strokes, white_strokes):
        decoded = decode_image(encode(picture), "strokes.png")
        np.testing.assert_allclose(to_mnist(decoded), expected, atol=1e-6)


def test_16_bit_and_palette_pngs_are_read_without_losing_grey_levels() -> None:
    grey = draw(SEVEN, box=(40, 60, 120, 200))
    sixteen_bit = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    palette = grey.convert("P")

    for picture in (sixteen_bit, palette):
        decoded = decode_image(encode(picture), "digit.png")
        np.testing.assert_allclose(to_mnist(decoded), to_mnist(grey), atol=1e-3)


def test_arrays_are_accepted_like_images() -> None:
    grey = draw(SEVEN, box=(40, 60, 120, 200))
    expected = to_mnist(grey)

    np.testing.assert_allclose(to_mnist(np.asarray(grey)), expected)
    np.testing.assert_allclose(to_mnist(np.asarray(grey) / 255.0), expected, atol=1e-6)
    np.testing.assert_allclose(to_mnist(np.asarray(grey.convert("RGB"))), expected)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        to_mnist(np.asarray(grey) * 2.0)
    with pytest.raises(ImageError, match=r"\(H, W\)"):
        to_mnist(np.zeros((4, 4, 2), np.uint8))


def test_exif_orientation_is_applied() -> None:
    """A phone photo stored sideways with an EXIF tag: the digit is read upright."""
    tall_one = draw([[(0.5, 0.0), (0.5, 1.0)]], box=(150, 50, 0, 300), line_width=40)
    stored = tall_one.rotate(90, expand=True)  # on its side in the file
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    photo = decode_image(encode(stored.convert("RGB"), "JPEG", exif=exif), "photo.jpg")

    assert photo.size == tall_one.size
    assert bounding_box(to_mnist(photo))[0] == 20


# --- decode_image and read_image: what comes from outside ---------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming the given size (8-bit grey) with no pixel data: a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"hello, world\n" * 10, "not a PNG or JPEG image"),
        (encode(Image.new("L", (10, 10)), "GIF"), "not a PNG or JPEG image"),
        (encode(Image.new("L", (10, 10)), "BMP"), "not a PNG or JPEG image"),
        (encode(Image.new("L", (64, 64), 255))[:60], "damaged PNG image"),
        (encode(Image.new("RGB", (64, 64)), "JPEG")[:200], "damaged .*image"),
        (png_header(MAX_IMAGE_SIDE + 1, 10), "4097x10 pixels is over the limit of 4096x4096"),
        (png_header(10, MAX_IMAGE_SIDE + 1), "over the limit of 4096x4096"),
        (png_header(100_000, 100_000), "over the limit of 4096x4096"),
    ],
    ids=[
        "empty",
        "text",
        "gif",
        "bmp",
        "truncated-png",
        "truncated-jpeg",
        "too-wide",
        "too-tall",
        "decompression-bomb",
    ],
)
def test_decode_image_rejects_bad_bytes_naming_the_source(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=rf"^upload\.png: .*{message}"):
        decode_image(data, "upload.png")


def test_decode_image_rejects_too_many_bytes_before_looking_at_them() -> None:
    with pytest.raises(ImageError, match=r"over the limit of 20,971,520 bytes"):
        decode_image(b"\0" * (MAX_IMAGE_BYTES + 1), "huge.png")


def test_the_largest_allowed_image_is_read() -> None:
    largest = Image.new("1", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), 1)
    ImageDraw.Draw(largest).rectangle((1000, 500, 2000, 3500), fill=0)

    result = to_mnist(decode_image(encode(largest), "large.png"))
    assert bounding_box(result) == (20, 7)


def test_read_image_names_the_file_in_every_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    huge = tmp_path / "huge.png"
    with huge.open("wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)  # sparse: no need to write 20 MB

    cases = {
        tmp_path / "missing.png": "no such file",
        tmp_path: "not a file",
        text: "not a PNG or JPEG image",
        huge: "20,971,521 bytes is over the limit of 20,971,520 bytes",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError, match=rf"^{path}: {message}"):
            read_image(path)


def test_read_image_reads_png_and_jpeg(tmp_path: Path, scanned_seven: Image.Image) -> None:
    for name, fmt in (("seven.png", "PNG"), ("seven.jpg", "JPEG")):
        (tmp_path / name).write_bytes(encode(scanned_seven, fmt))
        assert_mnist_like(to_mnist(read_image(tmp_path / name)))


def test_image_errors_are_pipeline_errors() -> None:
    """So the commands report them like every other bad input: a message and exit code 1."""
    assert issubclass(ImageError, DigitsError)
    assert images.ALLOWED_FORMATS == ("PNG", "JPEG")


# --- what one image can cost ---------------------------------------------------------------------


def test_read_header_says_format_size_and_scans_without_pillow() -> None:
    assert read_header(encode(Image.new("L", (30, 20))), "a") == ImageHeader("PNG", 30, 20)
    progressive = encode(Image.new("RGB", (300, 200)), "JPEG", progressive=True)
    assert read_header(progressive, "a") == ImageHeader("JPEG", 300, 200, scans=10)
    assert read_header(encode(Image.new("L", (8, 8)), "JPEG"), "a") == ImageHeader("JPEG", 8, 8)
    # An EXIF thumbnail is a JPEG inside a segment: skipped with its segment, not counted.
    assert read_header(exif_bomb_jpeg(100), "a") == ImageHeader("JPEG", 64, 64)
    assert read_header(b"GIF89a", "a") is None
    assert read_header(png_header(5000, 10)[:20], "a") is None  # no complete header: Pillow's


def test_a_jpeg_with_tens_of_thousands_of_scans_is_refused_before_decoding() -> None:
    """25,000 tiny progressive scans (1 MB) cost libjpeg about a minute to decode; the scans
    are counted from the markers in about a millisecond."""
    hostile = progressive_jpeg(4096, 25_000)
    assert len(hostile) <= 1024 * 1024

    started = time.thread_time()
    with pytest.raises(ImageError, match=r"^upload\.jpg: a JPEG with more than 64 scans"):
        decode_image(hostile, "upload.jpg")
    assert time.thread_time() - started < 0.1


def test_a_jpeg_at_the_scan_limit_costs_at_most_a_second() -> None:
    """The costliest scans allowed (refinement scans over every coefficient of every block of
    a 4096x4096 image): about 0.6 s on a 2-core x86-64."""
    hostile = progressive_jpeg(4096, MAX_JPEG_SCANS - 1, refine=True)
    assert read_header(hostile, "a").scans == MAX_JPEG_SCANS

    started = time.thread_time()
    image = decode_image(hostile, "upload.jpg", cpu_limit_s=2)
    seconds = time.thread_time() - started
    print(f"the costliest JPEG allowed: {seconds:.2f} s of CPU to decode")  # pytest -s shows it
    assert seconds < 2
    assert image.size == (WORKING_SIDE, WORKING_SIDE)  # libjpeg's 1/8 scale


def test_too_many_jpeg_markers_are_refused() -> None:
    comments = b"".join(images_comment(n) for n in range(MAX_JPEG_MARKERS + 1))
    jpeg = encode(Image.new("L", (8, 8)), "JPEG")
    with pytest.raises(ImageError, match="more than 1,000 JPEG markers"):
        decode_image(jpeg[:2] + comments + jpeg[2:], "upload.jpg")


def images_comment(number: int) -> bytes:
    text = b"%d" % number
    return b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text


def test_large_jpegs_are_decoded_at_the_scale_they_are_used() -> None:
    """libjpeg's scaled IDCT (Pillow's draft mode): never below WORKING_SIDE on a side."""
    photo = draw(SEVEN, box=(1000, 800, 2000, 2400), size=(4096, 4096)).convert("RGB")
    decoded = decode_image(encode(photo, "JPEG"), "photo.jpg")
    assert decoded.size == (512, 512)
    assert_mnist_like(to_mnist(decoded))
    wide = decode_image(encode(Image.new("L", (4096, 1024)), "JPEG"), "wide.jpg")
    assert wide.size == (2048, 512)


def test_a_cpu_limit_stops_a_decode_midway() -> None:
    """Checked between blocks of DECODE_BLOCK_BYTES: a 4096x4096 16-bit PNG (0.1 s) against a
    limit of 10 ms."""
    png = huge_png()
    started = time.thread_time()
    with pytest.raises(ImageError, match=r"^big\.png: decoding took more than 0\.01 s of CPU"):
        decode_image(png, "big.png", cpu_limit_s=0.01)
    assert time.thread_time() - started < 0.1  # the limit, one block and Pillow's set-up
    assert decode_image(png, "big.png", cpu_limit_s=2).size == (4096, 4096)


def test_decoding_does_not_reset_the_warnings_registry() -> None:
    """Python warns once per message and place: a JPEG whose EXIF makes Pillow warn 5,000
    times warns the second time... not at all (decode_image used to reset the filters, and
    wrote the 5,000 warnings, 1 MB, on every request)."""
    bomb = exif_bomb_jpeg()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        decode_image(bomb, "first.jpg")
        first = len(caught)
        decode_image(bomb, "second.jpg")
    assert first >= 4900
    assert len(caught) == first
