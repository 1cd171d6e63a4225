"""Weight-sharing supernets: shared tensors (`shared`), band-aware sampling (`sampling`), sandwich training
(`train`), inherited-weight scoring with BatchNorm recalibration (`score`), run folders (`folder`)."""

from nas.supernet.shared import Supernet, extract, weight_keys

__all__ = ["Supernet", "extract", "weight_keys"]
