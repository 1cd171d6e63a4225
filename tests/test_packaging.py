"""The wheel holds what an installed `nas` reads: every module, the shipped YAMLs and search_spaces/.

Builds a wheel from a copy of the sources (no install, a few seconds). .ci/run goes further: it installs
the wheel into a fresh virtual environment and runs `nas search --dry-run` from an empty directory.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "nas", "search_spaces")


def test_package_data_names_only_folders_that_exist():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir = {"nas.search_spaces": "search_spaces"}  # setup.py
    for package, patterns in cfg["tool"]["setuptools"]["package-data"].items():
        base = ROOT / package_dir.get(package, package.replace(".", "/"))
        for pattern in patterns:
            assert list(base.glob(pattern)), f"package-data {package}: {pattern} matches nothing"


def test_the_spaces_are_found_in_this_checkout():
    from nas.space import DEFAULT_SPACE, SPACES_DIR

    assert DEFAULT_SPACE.is_file() and (SPACES_DIR / "tiny.yaml").is_file()


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="building a wheel needs setuptools")
def test_the_wheel_holds_every_module_and_shipped_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("hybrid_nas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {p.relative_to(src).as_posix() for p in (src / "nas").rglob("*") if p.suffix in (".py", ".yaml", ".c")}
    want |= {f"nas/search_spaces/{p.name}" for p in (src / "search_spaces").glob("*.yaml")}
    assert not want - names, f"missing from the wheel: {sorted(want - names)}"
    assert "nas/search_spaces/hybrid.yaml" in names and "nas/proxy_default.yaml" in names
    assert "nas/dwconv.c" in names  # the depthwise kernel's source, built where the wheel is installed
    assert not {n for n in names if n.startswith(("tests/", "bench/", "search_spaces/"))}
