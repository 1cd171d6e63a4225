"""hybrid-nas: search a unified Mobile-Former / MobileViT v1-v3 design space under a MAdds budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from nas.builder import HybridNet
    from nas.config import ArchConfig


def create_model(spec: str | dict | ArchConfig, *, num_classes: int | None = None, in_chans: int | None = None,
                 input_size: int | None = None) -> HybridNet:
    """Build a network from a variant name (`nas variants`), an ArchConfig, its dict or a YAML path.

    >>> import nas
    >>> model = nas.create_model("mobilevit_xxs", num_classes=10)
    """
    from nas.builder import build_model
    from nas.variants import resolve_arch

    return build_model(resolve_arch(spec), num_classes=num_classes, in_chans=in_chans, input_size=input_size)


def list_models() -> list[str]:
    from nas.variants import list_variants

    return list_variants()


__all__ = ["create_model", "list_models", "__version__"]
