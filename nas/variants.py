"""The published variants as data: `nas/zoo/<name>.yaml` (ArchConfig) + `nas/zoo/published.yaml` (numbers).

`resolve_arch` turns a variant name, a YAML path, a dict or an ArchConfig into an ArchConfig.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

from nas.config import ArchConfig, load_yaml
from nas.errors import ConfigError

ZOO = Path(__file__).parent / "zoo"
FAMILIES = ("Mobile-Former", "MobileViT-v1", "MobileViT-v2", "MobileViT-v3")


@lru_cache(maxsize=1)
def _published() -> dict[str, dict[str, Any]]:
    data = load_yaml(ZOO / "published.yaml")
    return {v["name"]: v for v in data["variants"]}


def list_variants() -> list[str]:
    """Variant names in the order of the published table (family, then size)."""
    return list(_published())


def published(name: str) -> dict[str, Any]:
    """The authors' numbers for a variant: family, params_m, madds_m, top1, params_exact, resolution, note, source."""
    _check_name(name)
    return dict(_published()[name])


def _check_name(name: str) -> None:
    if name not in _published():
        close = difflib.get_close_matches(name, list_variants(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown variant {name!r}", f"{hint}`nas variants` lists the {len(_published())} names")


@lru_cache(maxsize=None)
def get_variant(name: str) -> ArchConfig:
    _check_name(name)
    return ArchConfig.from_yaml(ZOO / f"{name}.yaml")


def resolve_arch(spec: str | Path | dict | ArchConfig) -> ArchConfig:
    """A variant name, a path to an ArchConfig YAML, a dict or an ArchConfig -> ArchConfig."""
    if isinstance(spec, ArchConfig):
        return spec
    if isinstance(spec, dict):
        return ArchConfig.from_dict(spec)
    s = str(spec)
    if s in _published():
        return get_variant(s)
    if s.endswith((".yaml", ".yml")) or Path(s).exists():
        return ArchConfig.from_yaml(s)
    _check_name(s)
    raise AssertionError("unreachable")
