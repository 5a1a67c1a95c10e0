"""The project's file names say what each file holds: no two differ only by a plural, and
tests/ holds test modules, with its helper modules in one package, tests/helpers/.

`digits/model.py` (the Keras code) beside a `digits/app/models.py` (which artifact the app loads)
made a reader open the wrong one; the app's module is `digits/app/artifacts.py`.
"""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).parents[1]
CODE_DIRS = ("digits", "stages", "tools", "tests")


def project_files() -> list[Path]:
    return [
        path.relative_to(PROJECT)
        for folder in CODE_DIRS
        for path in (PROJECT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and "node_modules" not in path.parts
    ]


def test_no_two_project_files_differ_only_by_a_plural() -> None:
    stems: dict[str, list[Path]] = {}
    for path in project_files():
        stems.setdefault(path.stem, []).append(path)
    clashes = [
        (sorted(map(str, stems[stem[:-1]])), sorted(map(str, paths)))
        for stem, paths in stems.items()
        if stem.endswith("s") and stem[:-1] in stems
    ]
    assert not clashes, f"file names that differ only by a plural: {clashes}"


def test_the_app_names_its_model_files_in_artifacts_py() -> None:
    assert (PROJECT / "digits/app/artifacts.py").is_file()
    assert not (PROJECT / "digits/app/models.py").exists()


def test_tests_holds_test_modules_and_its_helpers_sit_in_one_package() -> None:
    tests = PROJECT / "tests"
    loose = sorted(
        path.name
        for path in tests.glob("*.py")
        if not path.name.startswith("test_") and path.name != "conftest.py"
    )
    assert not loose, f"helper modules outside tests/helpers/: {loose}"
    helpers = tests / "helpers"
    assert (helpers / "__init__.py").is_file()
    assert not list(helpers.glob("test_*.py")), "test modules belong in tests/, not its helpers"
