"""Build an offline HTML template for `dvc plots show`.

DVC's default template loads vega, vega-lite and vega-embed from a public CDN, so offline every
plot stays blank. This script inlines the classic (UMD) builds installed by `npm ci` in tools/
into a template that DVC fills in: dvc_render replaces the literal `{plot_divs}` (and, if
present, `{scripts}` and `{refresh_tag}`) with str.replace, not str.format, so braces elsewhere
need no escaping. The template has no `{scripts}` placeholder on purpose: that is where DVC
would put the CDN <script> tags.

Usage: python -m tools.build_plots_template build/plots_template.html
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
NODE_MODULES = TOOLS_DIR / "node_modules"

# Load order matters: vega-lite needs the `vega` global, vega-embed needs both.
LIBRARIES = (
    ("vega", "build/vega.min.js"),
    ("vega-lite", "build/vega-lite.min.js"),
    ("vega-embed", "build/vega-embed.min.js"),
)

# Placeholders dvc_render substitutes; none may appear inside the inlined libraries.
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC plots</title>
    <!-- {versions}: inlined by tools/build_plots_template.py, no network needed -->
{library_scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


class BuildError(Exception):
    """A library is missing or unusable; the message says what to do."""


def _library_version(package_dir: Path) -> str:
    try:
        return json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def _read_library(name: str, relpath: str) -> tuple[str, str]:
    package_dir = NODE_MODULES / name
    path = package_dir / relpath
    if not path.is_file():
        raise BuildError(f"{path} is missing: run `npm ci` in tools/ (or `npm ci --prefix tools`)")
    source = path.read_text(encoding="utf-8")
    # The source map is not shipped with the page; drop the reference so browsers don't ask.
    lines = source.rstrip("\n").split("\n")
    if lines and lines[-1].startswith("//# sourceMappingURL="):
        lines.pop()
    source = "\n".join(lines)
    if "</script" in source.lower():
        raise BuildError(f"{path} contains '</script' and cannot be inlined in a <script> tag")
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in source:
            raise BuildError(f"{path} contains DVC's placeholder {placeholder!r}")
    return f"{name}@{_library_version(package_dir)}", source


def build_template() -> str:
    versions = []
    scripts = []
    for name, relpath in LIBRARIES:
        version, source = _read_library(name, relpath)
        versions.append(version)
        scripts.append(f'    <script type="text/javascript">\n{source}\n    </script>')
    return PAGE.format(
        refresh_tag="{refresh_tag}",
        plot_divs="{plot_divs}",
        versions=", ".join(versions),
        library_scripts="\n".join(scripts),
    )


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1].startswith("-"):
        print(f"usage: {Path(argv[0]).name} OUTPUT.html", file=sys.stderr)
        return 2
    try:
        text = build_template()
    except BuildError as exc:
        print(f"build_plots_template: {exc}", file=sys.stderr)
        return 1
    out = Path(argv[1])
    write_atomically(out, text)
    print(f"wrote {out} ({len(text.encode('utf-8')) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
