"""Build an offline HTML template for `dvc plots show`.

DVC's default template loads vega, vega-lite and vega-embed from a public CDN, so offline every
plot stays blank. This script inlines the three libraries into a template that DVC fills in,
taking them from the PyPI package vl-convert-python (a locked dev dependency), so set-up needs
Python alone: `vl_convert.javascript_bundle()` is one script with all three and their
dependencies, whose default snippet sets `window.vegaEmbed`, `window.vegaLite` and
`window.vega`. It runs as a classic script, before DVC's inline plot scripts call `vegaEmbed`;
it is wrapped in a function so that none of its top-level names can collide with theirs.

dvc_render replaces the literal `{plot_divs}` (and, if present, `{scripts}` and `{refresh_tag}`)
with str.replace, not str.format, so braces elsewhere need no escaping. The template has no
`{scripts}` placeholder on purpose: that is where DVC would put the CDN <script> tags.

Usage: python -m tools.build_plots_template build/plots_template.html
"""

from __future__ import annotations

import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

# Placeholders dvc_render substitutes; none may appear inside the inlined libraries.
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC plots</title>
    <!-- vega, vega-lite and vega-embed from {bundle}: inlined by tools/build_plots_template.py,
         no network needed -->
    <script type="text/javascript">
(function () {{
{library}
}})();
    </script>
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
    """The libraries are missing or unusable; the message says what to do."""


def library_bundle() -> tuple[str, str]:
    """('vl-convert-python 1.9.0', the script that defines vegaEmbed, vegaLite and vega)."""
    try:
        import vl_convert
    except ImportError:
        raise BuildError(
            "vl-convert-python is not installed: run `make setup` "
            "(or `pip install -r requirements.lock`)"
        ) from None
    name = f"vl-convert-python {metadata.version('vl-convert-python')}"
    source = vl_convert.javascript_bundle()
    if "window.vegaEmbed" not in source:
        raise BuildError(f"{name}: its bundle does not define window.vegaEmbed")
    if "</script" in source.lower():
        raise BuildError(f"{name}: its bundle contains '</script' and cannot be inlined")
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in source:
            raise BuildError(f"{name}: its bundle contains DVC's placeholder {placeholder!r}")
    return name, source


def build_template() -> str:
    bundle, library = library_bundle()
    return PAGE.format(
        refresh_tag="{refresh_tag}", plot_divs="{plot_divs}", bundle=bundle, library=library
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
        print("usage: python -m tools.build_plots_template OUTPUT.html", file=sys.stderr)
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
