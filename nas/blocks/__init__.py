"""The torch layer of the block-kind registry: each kind attaches its module factory to its `BlockKind`
record (nas.config). Every block obeys one contract:

    factory(cfg, cin: int, ctx: BuildContext) -> nn.Module with .out_channels, forward(x, tokens) -> (x, tokens)

`tokens` is the Mobile-Former global-token tensor [B, M, d] or None; blocks that do not use it pass it on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.config import BlockKind, TokenCfg, attach_block_part, block_kind, list_block_kinds


@dataclass(frozen=True)
class BuildContext:
    tokens: TokenCfg | None


def register_block(cfg_cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: attach `factory` as the module factory of the block kind of `cfg_cls` (twice raises)."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        attach_block_part(cfg_cls, "build", factory)
        return factory

    return deco


def block_factory(kind: str) -> Callable[..., Any]:
    """The module factory of `kind`; an unknown kind is a ConfigError listing the valid ones."""
    return block_kind(kind).part("build")


def block_kinds() -> list[BlockKind]:
    """Every registered block kind, with its three parts loaded (config class, analytic MAdds, module factory)."""
    import nas.madds  # noqa: F401  (attaches the counts)

    return [block_kind(k) for k in list_block_kinds()]


# Importing the block modules attaches their factories (they import the names defined above).
from nas.blocks import common, mobile_former, mobilevit  # noqa: E402, F401
