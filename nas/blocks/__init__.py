"""One registry of block kinds: kind -> module factory. Every block obeys one contract:

    factory(cfg, cin: int, ctx: BuildContext) -> nn.Module with .out_channels, forward(x, tokens) -> (x, tokens)

`tokens` is the Mobile-Former global-token tensor [B, M, d] or None; blocks that do not use it pass it on.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from nas.config import TokenCfg
from nas.errors import ConfigError


@dataclass(frozen=True)
class BuildContext:
    tokens: TokenCfg | None


_FACTORIES: dict[str, Callable] = {}


def register_block(kind: str):
    def deco(fn: Callable) -> Callable:
        if kind in _FACTORIES:
            raise ValueError(f"block kind {kind!r} is registered twice")
        _FACTORIES[kind] = fn
        return fn

    return deco


def block_factory(kind: str) -> Callable:
    _load()
    if kind not in _FACTORIES:
        close = difflib.get_close_matches(kind, list(_FACTORIES), n=1)
        raise ConfigError(f"no block kind {kind!r}", f"{'did you mean ' + repr(close[0]) + '? ' if close else ''}"
                          f"registered: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[kind]


def registered_kinds() -> list[str]:
    _load()
    return sorted(_FACTORIES)


def _load() -> None:
    # Importing the block modules registers them.
    from nas.blocks import common, mobile_former, mobilevit  # noqa: F401
