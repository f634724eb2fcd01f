"""What `pip install segnext` gets from a wheel: every file the package reads at run time (configs, the
serve page, the bundled CamVid model) is named by pyproject.toml's package-data, and the licence that
pyproject.toml declares travels as its text. An editable install reads the source tree, so the rest of
the suite would not notice a file left out of the wheel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "src" / "segnext"


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomllib (Python 3.11+) or tomli")
    with open(REPO_ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def test_every_data_file_of_the_package_goes_into_the_wheel():
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["segnext"]
    packaged = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    data_files = {path for path in PACKAGE.rglob("*")
                  if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}
    assert data_files, "the package has no data files: the configs should be there"
    missing = sorted(str(path.relative_to(PACKAGE)) for path in data_files - packaged)
    assert not missing, f"not in [tool.setuptools.package-data] of pyproject.toml, so not in the wheel: {missing}"


def test_the_declared_licence_ships_as_its_text():
    assert _pyproject()["project"]["license"] == "Apache-2.0"
    text = (REPO_ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
