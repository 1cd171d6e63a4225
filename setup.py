"""Packaging beyond pyproject.toml: the top-level search_spaces/ folder ships inside the package as
nas/search_spaces/ (a wheel has no repository around it). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["nas", "nas.*"]), "nas.search_spaces"],
      package_dir={"nas.search_spaces": "search_spaces"})
