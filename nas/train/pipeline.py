"""The proxy's input pipeline: the data subset prepared once per process, then batches built on the device.

`prepare_data` takes the protocol's seeded subset (validation carved from the training set by
`nas.data.train_val_indices`; the test split only with ``final=True``), brings it to the proxy resolution
once (`to_resolution`: zero-pad a small growth such as 28 -> 32, resize otherwise) and keeps it as uint8
on the device, with the per-channel mean/std of the training images. Each training batch is augmented on
the device in one vectorised step (`augment`: random crop with zero padding, horizontal flip), then
`normalize`d to float in channels_last, which is also how evaluation feeds the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nas.data import ImageData, train_val_indices
from nas.errors import DataError
from nas.train.protocol import ProxyConfig


@dataclass(frozen=True, eq=False)
class PreparedData:
    """A protocol's images at the proxy resolution, uint8 [N, C, R, R] on the device, with their labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    mean: torch.Tensor  # [1, C, 1, 1] float, in 0..255 units, of the training images
    std: torch.Tensor


_CACHE: dict[str, Any] = {}


def to_resolution(x: torch.Tensor, r: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, r, r]: zero-pad centred when growing by at most 8 px (28 -> 32
    keeps every pixel of Fashion-MNIST), otherwise bilinear (antialiased) resize."""
    h, w = x.shape[-2:]
    if (h, w) == (r, r):
        return x
    if h == w and 0 < r - h <= 8:
        lo = (r - h) // 2
        return F.pad(x, (lo, r - h - lo, lo, r - h - lo))
    out = []
    for i in range(0, len(x), 4096):
        chunk = F.interpolate(x[i:i + 4096].float(), size=(r, r), mode="bilinear", align_corners=False,
                              antialias=r < min(h, w))
        out.append(chunk.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def test_subset(n: int, k: int) -> torch.Tensor:
    """Indices of the test images a protocol scores on: all `n` when `k` is 0 (or >= n), else a fixed random
    subset of `k`, the same for every seed and architecture (so paired comparisons see the same images)."""
    if k <= 0 or k >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(20261201))[:k].sort().values


def prepare_data(data: ImageData, proxy: ProxyConfig, device: str | torch.device = "cpu", *,
                 final: bool = False) -> PreparedData:
    """The subset of `data` that `proxy` trains and validates on (and the test split if `final`), on
    `device`. The last result is cached: trials of one process under one protocol prepare it once."""
    device = torch.device(device)
    key = (proxy.resolution, proxy.train_images, proxy.val_images, proxy.seed, str(device), final, proxy.test_images)
    if _CACHE.get("data") is data and _CACHE.get("key") == key:
        return _CACHE["prepared"]
    n = len(data.train_x)
    tr, va = train_val_indices(data.train_y, val_images=proxy.val_images,
                               train_images=min(proxy.train_images, n - proxy.val_images), seed=proxy.seed)
    r = proxy.resolution
    train_x = to_resolution(data.train_x[tr], r)
    mean = train_x.double().mean((0, 2, 3)).float().view(1, -1, 1, 1)
    std = train_x.double().std((0, 2, 3)).float().clamp_min(1.0).view(1, -1, 1, 1)
    test_x = test_y = None
    if final:
        if data.test_x is None:
            raise DataError(f"dataset {data.name!r} has no test split", "add a val/ or test/ directory for --final")
        keep = test_subset(len(data.test_y), proxy.test_images)
        test_x, test_y = to_resolution(data.test_x[keep], r).to(device), data.test_y[keep].to(device)
    prep = PreparedData(train_x=train_x.to(device), train_y=data.train_y[tr].to(device),
                        val_x=to_resolution(data.train_x[va], r).to(device), val_y=data.train_y[va].to(device),
                        test_x=test_x, test_y=test_y, mean=mean.to(device), std=std.to(device))
    _CACHE.update(data=data, key=key, prepared=prep)
    return prep


def augment(x: torch.Tensor, *, padding: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip of a whole batch, in two tensor ops."""
    b, _, h, w = x.shape
    dev = x.device
    if padding > 0:
        xp = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=generator.device).to(dev)
        ox = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=generator.device).to(dev)
        rows = (oy + torch.arange(h, device=dev)).view(b, 1, h, 1).expand(b, x.shape[1], h, w + 2 * padding)
        xp = torch.gather(xp, 2, rows)
        cols = (ox + torch.arange(w, device=dev)).view(b, 1, 1, w).expand(b, x.shape[1], h, w)
        x = torch.gather(xp, 3, cols)
    if hflip:
        flip = torch.rand(b, generator=generator, device=generator.device).to(dev) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    return x


def normalize(x: torch.Tensor, prep: PreparedData) -> torch.Tensor:
    """uint8 images -> the float, channels_last input the network sees (per-channel mean/std of `prep`)."""
    return ((x.float() - prep.mean) / prep.std).contiguous(memory_format=torch.channels_last)


def train_batch(prep: PreparedData, idx: torch.Tensor, proxy: ProxyConfig,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch of images `idx`: augmented as `proxy` says, normalised; with its labels."""
    x = augment(prep.train_x[idx], padding=proxy.crop_padding, hflip=proxy.hflip, generator=generator)
    return normalize(x, prep), prep.train_y[idx]
