"""The published variants as data: `nas/zoo/<name>.yaml` (ArchConfig) + `nas/zoo/published.yaml` (numbers).

`resolve_arch` turns a variant name, a YAML path, a dict or an ArchConfig into an ArchConfig.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from nas.config import ArchConfig, did_you_mean, load_yaml
from nas.errors import ConfigError

ZOO = Path(__file__).parent / "zoo"
FAMILIES = ("Mobile-Former", "MobileViT-v1", "MobileViT-v2", "MobileViT-v3")


@lru_cache(maxsize=1)
def _published() -> dict[str, dict[str, Any]]:
    data = load_yaml(ZOO / "published.yaml")
    rows = sorted(data["variants"], key=lambda v: (FAMILIES.index(v["family"]), v["params_exact"]))
    return {v["name"]: v for v in rows}


def list_variants() -> list[str]:
    """Variant names in the order of the published table (family, then size)."""
    return list(_published())


def published(name: str) -> dict[str, Any]:
    """The authors' numbers for a variant: family, params_m, madds_m, top1, params_exact, resolution, note, source."""
    _check_name(name)
    return dict(_published()[name])


def _check_name(name: str) -> None:
    if name not in _published():
        raise ConfigError(f"unknown variant {name!r}",
                          f"{did_you_mean(name, list_variants(), n=3)}`nas variants` lists the {len(_published())} names")


@cache
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


def variant_rows(*, fvcore: bool = False, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per published variant: our params and MAdds next to the published ones.

    Params come from building the network; MAdds from the analytic count (checked against fvcore within
    0.5% by the tests) or, with `fvcore=True`, from fvcore itself."""
    from nas.builder import build_model, count_params
    from nas.madds import count_madds

    rows = []
    for name in names or list_variants():
        pub = published(name)
        cfg = get_variant(name)
        if fvcore:
            from nas.profile import profile_arch

            prof = profile_arch(cfg)
            params, madds = prof.params, prof.madds
        else:
            params, madds = count_params(build_model(cfg)), count_madds(cfg)
        madds_m = madds / 1e6
        rows.append({
            "name": name,
            "family": pub["family"],
            "resolution": cfg.resolution,
            "params": params,
            "params_exact": pub["params_exact"],
            "madds_m": round(madds_m, 2),
            "published_params_m": pub["params_m"],
            "published_madds_m": pub["madds_m"],
            "madds_diff_pct": round(100.0 * (madds_m - pub["madds_m"]) / pub["madds_m"], 2),
            "published_top1": pub["top1"],
            "note": pub.get("note", ""),
        })
    return rows
