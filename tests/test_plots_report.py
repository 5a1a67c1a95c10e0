"""`dvc plots show` with the offline template renders every declared plot in headless Chromium.

The committed plots/ and metrics/ (from a real run) and the project's dvc.yaml are copied to a
scratch directory, the template is built from vl-convert-python's bundle by
tools/build_plots_template.py, the real `dvc plots show` writes the report, and Chromium opens it
with every non-file:// request aborted, so a plot only draws if vega, vega-lite and vega-embed
really are inlined.

Nothing here is skipped: CI installs Chromium and `make setup` installs vl-convert-python, so a
missing prerequisite is a failure that says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers.chromium import OfflinePage, launched_chromium, require_chromium

PROJECT = Path(__file__).parents[1]
TOOLS = PROJECT / "tools"
BUILD_TEMPLATE = TOOLS / "build_plots_template.py"
DVC = Path(sys.executable).parent / "dvc"

# What dvc_render treats as an image plot; every other declared file is a vega (data) plot.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".gif", ".png", ".svg"}
DATA_SUFFIXES = {".yml", ".yaml", ".json", ".csv", ".tsv"}

LIVE_DIR = "data/training-log"  # DVCLive's folder (dvc.yaml)
RENDER_TIMEOUT_S = 30
MIN_SCREENSHOT_BYTES = 100_000

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class DeclaredPlot:
    name: str  # the renderer name DVC gives the plot: its id, or its file for image plots
    kind: str  # "vega" or "image"
    files: tuple[str, ...]  # the data files it is drawn from

    @property
    def div_id(self) -> str:
        # Same translation as dvc_render.base.Renderer.remove_special_chars.
        return self.name.translate({ord(c): "_" for c in r"!@#$%^&*()[]{};,<>?\/:.|`~=_+ "})


def _kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in DATA_SUFFIXES:
        return "vega"
    raise AssertionError(f"dvc.yaml declares a plot this test cannot classify: {path!r}")


def declared_plots(dvc_yaml: Path) -> list[DeclaredPlot]:
    """Each top-level `plots:` entry of dvc.yaml, as DVC will render it."""
    plots = []
    for entry in yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["plots"]:
        if isinstance(entry, str):
            plots.append(DeclaredPlot(entry, _kind(entry), (entry,)))
            continue
        ((plot_id, props),) = entry.items()
        props = props or {}
        y = props.get("y")
        files = list(y) if isinstance(y, dict) else [plot_id]
        kinds = {_kind(f) for f in files}
        assert len(kinds) == 1, f"plot {plot_id!r} mixes images and data: {files}"
        (kind,) = kinds
        if kind == "image":
            # DVC renders one image renderer per file, named by the file.
            plots.extend(DeclaredPlot(f, "image", (f,)) for f in files)
        else:
            plots.append(DeclaredPlot(plot_id, "vega", tuple(files)))
    return plots


def library_bundle() -> str:
    """vega, vega-lite and vega-embed in one script, as the template inlines them."""
    try:
        import vl_convert
    except ImportError:
        pytest.fail("vl-convert-python is missing: run `make setup`", pytrace=False)
    return vl_convert.javascript_bundle()


def require_prerequisites():
    library_bundle()
    if not DVC.is_file():
        pytest.fail(
            f"{DVC} is missing: install the project (`pip install -e .[dev]`)", pytrace=False
        )
    require_chromium()


def run(args: list[str | os.PathLike], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The files `dvc plots show` reads, in a scratch DVC project without git."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        shutil.copy2(PROJECT / name, root / name)
    for name in ("plots", "metrics"):
        shutil.copytree(PROJECT / name, root / name)
    # DVCLive's log is DVC-cached, not in git: a fresh clone (CI's, before `make verify`) has
    # none until `dvc repro` or `dvc pull`; then its plots are empty.
    if (PROJECT / LIVE_DIR).is_dir():
        shutil.copytree(PROJECT / LIVE_DIR, root / LIVE_DIR)
    (root / ".dvc").mkdir()
    shutil.copy2(PROJECT / ".dvc" / "config", root / ".dvc" / "config")
    return root


def build_template(out: Path) -> str:
    run([sys.executable, BUILD_TEMPLATE, out], cwd=PROJECT)
    return out.read_text(encoding="utf-8")


# In the page: per declared plot, what rendered. A vega plot counts as drawn when vega-embed put
# an <svg> with mark elements, or a <canvas> with coloured (non-grey) pixels, in its div: axes and
# text are grey, the data marks use vega's colour palettes.
INSPECT_JS = """
(plots) => plots.map(({divId, kind}) => {
    const div = document.getElementById(divId);
    if (!div) return {divId, kind, found: false};
    if (kind === 'image') {
        const imgs = [...div.querySelectorAll('img')];
        return {divId, kind, found: true, images: imgs.map(img => ({
            src: img.getAttribute('src'), complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight}))};
    }
    // vega-embed adds the class to the element it embeds into: the plot's own div.
    const embed = div.classList.contains('vega-embed') || !!div.querySelector('.vega-embed');
    const svg = div.querySelector('svg.marks');
    const canvas = div.querySelector('canvas');
    let svgMarks = 0, colouredPixels = 0, width = 0, height = 0;
    if (svg) {
        svgMarks = svg.querySelectorAll('g.mark-rect path, g.mark-line path, g.mark-area path,'
            + 'g.mark-symbol path, g.mark-rect rect').length;
        const box = svg.getBoundingClientRect(); width = box.width; height = box.height;
    }
    if (canvas && canvas.width > 0 && canvas.height > 0) {
        width = canvas.width; height = canvas.height;
        const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
        for (let i = 0; i < data.length; i += 4) {
            const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) colouredPixels++;
        }
    }
    return {divId, kind, found: true, embed, svg: !!svg, canvas: !!canvas,
            svgMarks, colouredPixels, width, height};
})
"""


def vega_drawn(result: dict) -> bool:
    return (
        result["found"]
        and result["embed"]
        and result["width"] > 0
        and result["height"] > 0
        and (result["svgMarks"] > 0 or result["colouredPixels"] > 500)
    )


def image_loaded(result: dict) -> bool:
    images = result.get("images") or []
    return (
        result["found"]
        and len(images) > 0
        and all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in images)
    )


def test_offline_template_inlines_the_libraries(tmp_path: Path):
    require_prerequisites()
    html = build_template(tmp_path / "template.html")
    assert html.count("{plot_divs}") == 1
    assert "{scripts}" not in html, "DVC would put its CDN <script> tags there"
    assert "cdn.jsdelivr.net" not in html
    assert "<script src" not in html
    bundle = library_bundle()
    assert bundle[:2000] in html, "the libraries are not inlined"
    assert bundle[-2000:] in html, "the libraries are not inlined whole"


def test_committed_config_names_no_template():
    """A template that only `make setup` builds must not be named in the committed config: every
    clone without it would fail with "HTML template has to contain '{plot_divs}'"."""
    assert "html_template" not in (PROJECT / ".dvc" / "config").read_text(encoding="utf-8")


def test_make_setup_points_plain_dvc_plots_show_at_the_template(project_copy: Path):
    """`make plots-template` (part of `make setup`) builds the offline template and sets it in
    .dvc/config.local, so that a plain `dvc plots show` works offline."""
    require_prerequisites()
    for name in ("Makefile", "requirements.lock", "pyproject.toml"):
        shutil.copy2(PROJECT / name, project_copy / name)
    (project_copy / "tools").mkdir()
    for name in ("__init__.py", "build_plots_template.py"):
        if (TOOLS / name).is_file():
            shutil.copy2(TOOLS / name, project_copy / "tools" / name)
    make = ["make", "--no-print-directory", f"BIN={DVC.parent}", f"PYTHON={sys.executable}"]

    run([*make, "plots-template"], cwd=project_copy)
    run([*make, "plots-template"], cwd=project_copy)  # a second time changes nothing
    run([DVC, "plots", "show"], cwd=project_copy)

    local = (project_copy / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert local.count("html_template = ../build/plots_template.html") == 1
    html = (project_copy / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html
    for plot in declared_plots(project_copy / "dvc.yaml"):
        if plot.kind == "vega":
            assert f"vegaEmbed('#{plot.div_id}', spec)" in html
    assert library_bundle()[:2000] in html


def test_report_renders_every_declared_plot_offline(project_copy: Path, tmp_path: Path):
    require_prerequisites()
    declared = declared_plots(project_copy / "dvc.yaml")
    plots = [p for p in declared if all((project_copy / f).is_file() for f in p.files)]
    without_data = {f for p in declared if p not in plots for f in p.files}
    assert all(f.startswith(f"{LIVE_DIR}/") for f in without_data), without_data
    vega_plots = [p for p in plots if p.kind == "vega"]
    image_plots = [p for p in plots if p.kind == "image"]
    assert vega_plots, "dvc.yaml declares no vega plots: this test would prove nothing"

    template = tmp_path / "plots_template.html"
    build_template(template)
    report_dir = tmp_path / "report"
    run([DVC, "plots", "show", "--html-template", template, "-o", report_dir], cwd=project_copy)
    index = report_dir / "index.html"
    assert "cdn.jsdelivr.net" not in index.read_text(encoding="utf-8")

    with launched_chromium() as browser:
        offline = OfflinePage(browser)
        page = offline.page
        page.goto(index.as_uri(), wait_until="load")
        # vega-embed draws asynchronously: poll until every vega plot is drawn (or time out
        # and report what each div holds).
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        while True:
            results = page.evaluate(
                INSPECT_JS, [{"divId": p.div_id, "kind": p.kind} for p in plots]
            )
            by_id = {r["divId"]: r for r in results}
            if all(vega_drawn(by_id[p.div_id]) for p in vega_plots):
                break
            if time.monotonic() > deadline or offline.errors:
                break
            page.wait_for_timeout(200)
        rendered_vega = page.evaluate(
            "() => [...document.querySelectorAll('.vega-embed')]"
            ".filter(e => e.querySelector('svg, canvas')).length"
        )
        screenshot = tmp_path / "plots_report.png"
        page.screenshot(path=screenshot, full_page=True)

    assert not offline.errors, f"script errors in the report: {offline.errors}"
    assert not offline.blocked, f"the report tried to reach the network: {offline.blocked}"

    not_drawn = [p.name for p in vega_plots if not vega_drawn(by_id[p.div_id])]
    assert not not_drawn, f"vega plots not drawn: {not_drawn}\n{results}"
    not_loaded = [p.name for p in image_plots if not image_loaded(by_id[p.div_id])]
    assert not not_loaded, f"image plots not loaded: {not_loaded}\n{results}"
    assert rendered_vega == sum(p.kind == "vega" for p in declared)  # empty ones draw axes

    assert screenshot.stat().st_size > MIN_SCREENSHOT_BYTES, "the screenshot is nearly blank"
