"""The proxy protocol as data: `ProxyConfig`, read from a YAML file or a shipped protocol by name.

Shipped protocols are the files ``nas/proxy_<name>.yaml`` of the package (``default`` is
nas/proxy_default.yaml); `load_proxy` takes such a name or the path of any YAML file. Every field changes
results, so every field goes into `ProxyConfig.hash`, which keys stored results.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nas.errors import ConfigError

PROTOCOLS_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PROXY_PATH = PROTOCOLS_DIR / "proxy_default.yaml"
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine",)
_FLOATS = ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing")


def _check_int(name: str, v: Any, lo: float, hint: str) -> None:
    """A bool-safe integer check: True is not 1 here."""
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ConfigError(f"proxy.{name} = {v!r} is invalid", hint)


@dataclass(frozen=True)
class ProxyConfig:
    """One proxy training protocol. Every field changes results, so every field goes into `hash`."""

    resolution: int = 32
    epochs: int = 2
    train_images: int = 512
    val_images: int = 1024
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 0.05
    warmup_epochs: float = 0.25
    schedule: str = "cosine"
    label_smoothing: float = 0.1
    crop_padding: int = 2
    hflip: bool = True
    seed: int = 0
    test_images: int = 0  # scoring with final=True: 0 = the whole test split, N = a fixed subset of N images

    def __post_init__(self) -> None:
        for name in ("epochs", "train_images", "val_images", "batch_size"):
            _check_int(name, getattr(self, name), 1, "an integer >= 1")
        _check_int("resolution", self.resolution, 8, "an integer >= 8 (32 typical)")
        _check_int("crop_padding", self.crop_padding, 0, "an integer >= 0 (0: no crop)")
        _check_int("test_images", self.test_images, 0, "an integer >= 0 (0: the whole test split)")
        _check_int("seed", self.seed, -math.inf, "an integer")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"proxy.optimizer = {self.optimizer!r} is invalid", f"one of: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"proxy.schedule = {self.schedule!r} is invalid", f"one of: {', '.join(SCHEDULES)}")
        for name, lo, hi in (("lr", 0.0, math.inf), ("momentum", 0.0, 1.0), ("weight_decay", 0.0, math.inf),
                             ("warmup_epochs", 0.0, math.inf), ("label_smoothing", 0.0, 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (lo <= v < hi) \
                    or (name == "lr" and v <= 0):
                raise ConfigError(f"proxy.{name} = {v!r} is invalid", f"a number in [{lo}, {hi})"
                                  + (" and > 0" if name == "lr" else ""))
        if not isinstance(self.hflip, bool):
            raise ConfigError(f"proxy.hflip = {self.hflip!r} is invalid", "true or false")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def steps(self) -> int:
        """Optimizer steps of one training run (the last partial batch of an epoch is dropped)."""
        return self.epochs * max(1, self.train_images // self.batch_size)

    def steps_on(self, available: int | None) -> int:
        """Optimizer steps this protocol trains where the dataset has `available` training images beside its
        validation split: the trainer draws min(train_images, available) of them (`prepare_data`), so a
        protocol asking more than a dataset holds trains fewer steps than `steps` says. None: `steps`."""
        if available is None or available >= self.train_images:
            return self.steps
        n = max(1, available)
        return self.epochs * max(1, n // min(self.batch_size, n))

    def shortfall(self, available: int | None, *, what: str = "protocol") -> str | None:
        """One line when the dataset has fewer training images than this protocol asks for (None when it has
        enough): what is trained instead, and how to ask for it."""
        if available is None or available >= self.train_images:
            return None
        return (f"the {what} asks for {self.train_images} training images; the dataset has {available} beside its "
                f"{self.val_images} validation images, so it trains {self.epochs} epochs over {available} "
                f"({self.steps_on(available)} optimizer steps, not {self.steps}); rows record the steps trained")

    def stretched(self, steps: int, *, epochs: int = 2, available: int | None = None) -> ProxyConfig:
        """The same recipe trained for `steps` optimizer steps: `epochs` passes over steps / epochs batches of
        fresh training images, warm-up over the same share of the steps, the same test subset. The ladder's
        higher rungs and the long reference (bench/long_reference.py) are the confirm protocol stretched.

        `available`: the training images the dataset has beside the validation split. Where `epochs` passes
        would need more, the fewest more passes (one that divides `steps` where one does) over fewer images
        keep the step count: Fashion-MNIST's 59,488 hold 2 passes of up to 7,436 steps, so 8,192 steps are 4
        passes over 32,768 images (without `available` the trainer would stop at 7,436 steps, as many as the
        images allow)."""
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < epochs:
            raise ConfigError(f"{steps!r} training steps is invalid", f"an integer >= {epochs}")
        if available is not None and steps // epochs * self.batch_size > available:
            fewest = max(epochs + 1, math.ceil(steps * self.batch_size / max(1, available)))
            if fewest > steps:
                raise ConfigError(f"{steps} training steps of {self.batch_size} images cannot be laid out on "
                                  f"{available} training images", "use a larger dataset or fewer steps")
            exact = [e for e in range(fewest, min(steps, 2 * fewest) + 1) if steps % e == 0]
            epochs = exact[0] if exact else fewest
        share = self.warmup_epochs / self.epochs  # the warm-up's share of all steps
        return self.replace(epochs=epochs, train_images=steps // epochs * self.batch_size, warmup_epochs=share * epochs)

    @property
    def hash(self) -> str:
        """Stable 10-hex id of the protocol: same fields, same hash, across processes and versions."""
        d = {k: (float(v) if isinstance(v, float) else v) for k, v in self.to_dict().items()}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    def replace(self, **changes: Any) -> ProxyConfig:
        return proxy_from_dict({**self.to_dict(), **changes}, where="proxy override")


def proxy_from_dict(d: Any, *, where: str = "proxy config") -> ProxyConfig:
    """A mapping -> ProxyConfig, with a ConfigError naming an unknown key and the valid ones."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping of proxy settings, got {type(d).__name__}")
    names = [f.name for f in fields(ProxyConfig)]
    for k in d:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown proxy setting {k!r} in {where}", f"{hint}valid settings: {', '.join(names)}")
    d = {k: float(v) if k in _FLOATS and isinstance(v, int) and not isinstance(v, bool) else v
         for k, v in d.items()}
    return ProxyConfig(**d)


def shipped_protocols() -> dict[str, Path]:
    """The protocols shipped with the package, by name: ``nas/proxy_<name>.yaml`` -> ``<name>``."""
    return {p.stem.removeprefix("proxy_"): p for p in sorted(PROTOCOLS_DIR.glob("proxy_*.yaml"))}


def protocol_path(spec: str | Path | None = None) -> Path:
    """The YAML file of a protocol: a path to an existing file, else a shipped name (None: "default")."""
    if spec is None or str(spec) == "":
        return DEFAULT_PROXY_PATH
    p = Path(spec)
    if p.is_file():
        return p
    shipped = shipped_protocols()
    if str(spec) in shipped:
        return shipped[str(spec)]
    if not p.suffix and len(p.parts) == 1:
        raise ConfigError(f"unknown proxy protocol {str(spec)!r}: not a file and not a shipped protocol",
                          f"pass a YAML path or one of: {', '.join(shipped)}")
    return p  # load_yaml names the missing file


def load_proxy(spec: str | Path | None = None, **overrides: Any) -> ProxyConfig:
    """The proxy protocol `spec` (a YAML path or a shipped name; default: "default"), with `overrides`
    (None values ignored) applied on top. Unknown keys and malformed YAML raise ConfigError."""
    from nas.config import load_yaml

    path = protocol_path(spec)
    d = load_yaml(path)
    if isinstance(d, dict) and isinstance(d.get("proxy"), dict) and len(d) == 1:
        d = d["proxy"]
    if not isinstance(d, dict):
        raise ConfigError(f"{path} must hold a mapping of proxy settings",
                          f"valid settings: {', '.join(f.name for f in fields(ProxyConfig))}")
    d = {**d, **{k: v for k, v in overrides.items() if v is not None}}
    return proxy_from_dict(d, where=str(path))
