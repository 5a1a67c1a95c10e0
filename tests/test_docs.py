"""The README and the documentation site: short, every page reachable, no dead relative links.

The site itself is built by `make docs` (`mkdocs build --strict`, also in .ci/run), which fails on
a broken link or anchor inside docs/; these checks cover what mkdocs does not see.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200
# [text](target) and ![alt](target), the target up to a space (a title) or the closing bracket.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def nav_pages(nav: list) -> list[str]:
    """Every page file named in mkdocs.yml's nav, sections included."""
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages += nav_pages(value)
        elif not re.match(r"[a-z]+://", value):
            pages.append(value)
    return pages


def relative_links(text: str) -> list[str]:
    """The link targets of a markdown text that point into the repository (no URLs, no anchors)."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code blocks hold commands, not links
    targets = [target.split("#", 1)[0] for target in LINK.findall(text)]
    return [t for t in targets if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def documents() -> list[Path]:
    return [README, ROOT / "data" / "README.md", ROOT / "mkdocs.yml", *sorted(DOCS.rglob("*.md"))]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines: move some to docs/"


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    assert len(set(listed)) == len(listed), listed


@pytest.mark.parametrize("document", [README, ROOT / "data" / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(document: Path) -> None:
    links = relative_links(document.read_text(encoding="utf-8"))
    assert links or document != README  # the README links to the docs
    missing = [link for link in links if not (document.parent / link).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"


def test_relative_links_finds_links_and_skips_urls_and_code() -> None:
    text = (
        'See [the docs](docs/a.md#part), ![a plot](plots/b.png "title"), '
        "[DVC](https://dvc.org) and [here](#anchor).\n```\n[not](a-link.md)\n```\n"
    )
    assert relative_links(text) == ["docs/a.md", "plots/b.png"]


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doc_mentions_npm(document: Path) -> None:
    # Set-up needs Python alone: the offline plots template comes from vl-convert-python.
    assert not re.search(r"\bnpm\b", document.read_text(encoding="utf-8"), re.IGNORECASE)
