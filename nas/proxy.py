"""The proxy protocol (data: `ProxyConfig`, shipped as nas/proxy_default.yaml) and the trainer `train_arch`.

A proxy trial trains one network for a few epochs on a small, fixed, seeded subset of the training set
and scores it on a validation split carved from the training set (`nas.data.train_val_indices`); the
test split is only read when ``final=True``. Results are keyed by `ProxyConfig.hash`.

Resolution: networks adapt to the proxy resolution without changing any knob. `nas.builder.build_model`
is called with ``input_size=proxy.resolution``; below 64 px it runs the stem at stride 1 (so a 32 px image
sees the feature-map sizes a 64 px image would at stride 2) and every other knob stays as configured.
MAdds for budgets are always counted at the architecture's own target resolution, never here.
On the tiny maps this leaves the last stages, the blocks take exact shortcuts (a conv with a 1x1 output as
one matmul, `nas.blocks.common.Conv2d`; one-patch attention as its value projection); traced counts keep
the plain ops.

Input pipeline: the subset is resized (or, for a small growth such as 28 -> 32, zero-padded) to the proxy
resolution once up front and kept as uint8 on the device; each batch is augmented on the device in one
vectorised step (random crop with zero padding, horizontal flip), then normalised with the subset's
per-channel mean/std. channels_last everywhere; on CUDA also bf16 autocast.

The report contract (how Ray Tune, a progress bar or a test observe training without being imported):
``report(metrics)`` is called once per epoch with the keys ``epoch`` (1-based), ``train_loss``,
``val_top1`` (percent), ``images_per_s`` (training throughput of that epoch) and ``elapsed_s`` (since the
start of training). If it returns the string ``"stop"`` training ends at once with status ``"stopped"``
(the metrics reported so far stand); any other return value is ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.config import ArchConfig
from nas.data import ImageData, load_dataset, train_val_indices
from nas.errors import ConfigError, DataError

DEFAULT_PROXY_PATH = Path(__file__).parent / "proxy_default.yaml"
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine",)
STATUSES = ("completed", "nan", "stopped", "failed")
Report = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class ProxyConfig:
    """One proxy training protocol. Every field changes results, so every field goes into `hash`."""

    resolution: int = 32
    epochs: int = 2
    train_images: int = 1024
    val_images: int = 512
    batch_size: int = 32
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

    def __post_init__(self) -> None:
        for name in ("resolution", "epochs", "train_images", "val_images", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"proxy.{name} = {v!r} is invalid", "an integer >= 1")
        if self.resolution < 8:
            raise ConfigError(f"proxy.resolution = {self.resolution} is too small", "use 8 px or more (32 typical)")
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
        if not isinstance(self.crop_padding, int) or isinstance(self.crop_padding, bool) or self.crop_padding < 0:
            raise ConfigError(f"proxy.crop_padding = {self.crop_padding!r} is invalid", "an integer >= 0 (0: no crop)")
        if not isinstance(self.hflip, bool):
            raise ConfigError(f"proxy.hflip = {self.hflip!r} is invalid", "true or false")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"proxy.seed = {self.seed!r} is invalid", "an integer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
    d = dict(d)
    for k in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing"):
        if isinstance(d.get(k), int) and not isinstance(d.get(k), bool):
            d[k] = float(d[k])
    return ProxyConfig(**d)


def load_proxy(path: str | Path | None = None, **overrides: Any) -> ProxyConfig:
    """The proxy protocol of a YAML file (default: the shipped nas/proxy_default.yaml), with `overrides`
    (None values ignored) applied on top. Unknown keys and malformed YAML raise ConfigError."""
    from nas.config import load_yaml

    d = load_yaml(path or DEFAULT_PROXY_PATH)
    if isinstance(d, dict) and isinstance(d.get("proxy"), dict) and len(d) == 1:
        d = d["proxy"]
    if not isinstance(d, dict):
        raise ConfigError(f"{path or DEFAULT_PROXY_PATH} must hold a mapping of proxy settings",
                          f"valid settings: {', '.join(f.name for f in fields(ProxyConfig))}")
    d = {**d, **{k: v for k, v in overrides.items() if v is not None}}
    return proxy_from_dict(d, where=str(path or DEFAULT_PROXY_PATH))


# ---------------------------------------------------------------------------------------------------------
# Result


@dataclass
class TrainResult:
    """What one proxy trial produced. Accuracies are percent; `val_top1` is the last epoch's."""

    status: str
    val_top1: float | None = None
    best_val_top1: float | None = None
    test_top1: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    train_images_per_s: float | None = None
    wall_s: float = 0.0
    params: int | None = None
    error: str | None = None
    arch_id: str | None = None
    proxy_hash: str | None = None
    dataset: str | None = None
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------
# Data preparation (once per process and protocol) and on-device augmentation


@dataclass(frozen=True, eq=False)
class _Prepared:
    train_x: torch.Tensor  # uint8 [N, C, R, R] on device
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    mean: torch.Tensor  # [1, C, 1, 1] float, in 0..255 units
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


def _prepare(data: ImageData, proxy: ProxyConfig, device: torch.device, final: bool) -> _Prepared:
    key = (proxy.resolution, proxy.train_images, proxy.val_images, proxy.seed, str(device), final)
    if _CACHE.get("data") is data and _CACHE.get("key") == key:
        return _CACHE["prepared"]
    n = len(data.train_x)
    if proxy.val_images >= n:
        raise DataError(f"proxy.val_images={proxy.val_images} leaves no training images ({data.name} has {n})",
                        "lower val_images")
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
        test_x, test_y = to_resolution(data.test_x, r).to(device), data.test_y.to(device)
    prep = _Prepared(train_x=train_x.to(device), train_y=data.train_y[tr].to(device),
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


# ---------------------------------------------------------------------------------------------------------
# Training


def _lr_at(step: int, *, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(1.0, t)))


def _make_optimizer(model: nn.Module, proxy: ProxyConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or p is getattr(model, "global_tokens", None) else decay).append(p)
    groups = [{"params": decay, "weight_decay": proxy.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel for all parameters (about 6x faster steps than the per-tensor loop on CPU for
    # these many-small-tensor networks).
    if proxy.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=proxy.lr, momentum=proxy.momentum, nesterov=proxy.momentum > 0,
                               fused=True)
    return torch.optim.AdamW(groups, lr=proxy.lr, betas=(proxy.momentum, 0.999), fused=True)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prep: _Prepared, *, batch_size: int,
             device: torch.device) -> float:
    """Top-1 (percent) of `model` on uint8 images `x`."""
    model.eval()
    correct = 0
    amp = device.type == "cuda"
    for i in range(0, len(x), batch_size):
        xb = (x[i:i + batch_size].float() - prep.mean) / prep.std
        xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb)
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(1, len(x))


class _NonFinite(Exception):
    pass


def train_arch(arch: ArchConfig | str, data: ImageData | str | None, proxy: ProxyConfig | None = None, *,
               device: str | torch.device = "cpu", report: Report | None = None, final: bool = False,
               threads: int | None = None) -> TrainResult:
    """Proxy-train `arch` on `data` (an ImageData, or a dataset name/path) under `proxy` (default protocol
    if None) and return a TrainResult; see the module docstring for the report contract.

    Status: ``completed``; ``nan`` (a non-finite loss ended training, with a message); ``stopped``
    (`report` returned "stop"); ``failed`` (the network raised while training, e.g. out of memory; the
    error text is kept). Configuration and data problems raise NasError instead.
    """
    from nas.builder import build_model, count_params
    from nas.variants import resolve_arch

    arch = resolve_arch(arch)
    proxy = proxy or load_proxy()
    if not isinstance(data, ImageData):
        data = load_dataset(data)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available here", "use --device cpu")
    prev_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    result = TrainResult(status="failed", arch_id=arch.arch_id, proxy_hash=proxy.hash, dataset=data.name,
                         device=str(device))
    try:
        prep = _prepare(data, proxy, device, final)
        torch.manual_seed(proxy.seed)
        model = build_model(arch, num_classes=data.num_classes, in_chans=data.in_chans, input_size=proxy.resolution)
        result.params = count_params(model)
        # channels_last on every device: oneDNN's depthwise and 1x1 convolutions run ~12-18% faster in it
        # on this CPU (BENCHMARKS.md), cuDNN's with bf16 too.
        model = model.to(device, memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        _train_loop(model, prep, proxy, device, report, result, t_start)
        if final and result.status == "completed":
            result.test_top1 = evaluate(model, prep.test_x, prep.test_y, prep, batch_size=2 * proxy.batch_size,
                                        device=device)
    except _NonFinite as e:
        result.status = "nan"
        result.error = str(e)
    except (RuntimeError, ValueError, IndexError, torch.OutOfMemoryError) as e:
        result.status = "failed"
        result.error = f"{type(e).__name__}: {e}".strip()[:2000]
    finally:
        if threads is not None:
            torch.set_num_threads(prev_threads)
        result.wall_s = time.perf_counter() - t_start
    return result


def _train_loop(model: nn.Module, prep: _Prepared, proxy: ProxyConfig, device: torch.device,
                report: Report | None, result: TrainResult, t_start: float) -> None:
    n = len(prep.train_x)
    bs = min(proxy.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the last partial batch: BatchNorm needs > 1 sample
    total = steps_per_epoch * proxy.epochs
    warmup = int(round(proxy.warmup_epochs * steps_per_epoch))
    opt = _make_optimizer(model, proxy)
    crit = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
    gen = torch.Generator(device=device).manual_seed(proxy.seed + 1)
    amp = device.type == "cuda"
    train_time = 0.0
    train_seen = 0
    step = 0
    for epoch in range(1, proxy.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            xb = augment(prep.train_x[idx], padding=proxy.crop_padding, hflip=proxy.hflip, generator=gen)
            xb = (xb.float() - prep.mean) / prep.std
            xb = xb.contiguous(memory_format=torch.channels_last)
            lr = _lr_at(step, total=total, warmup=warmup, base=proxy.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = crit(model(xb), prep.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().float()
            step += 1
            # Check on CPU every step (free); on CUDA every 25 steps to avoid a sync per step.
            if (not amp or i % 25 == 24 or i == steps_per_epoch - 1) and not torch.isfinite(loss_sum):
                raise _NonFinite(f"the training loss became non-finite at epoch {epoch}, step {i + 1} "
                                 f"(lr {proxy.lr:g}); lower the learning rate or check the architecture")
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        train_time += dt
        train_seen += steps_per_epoch * bs
        val = evaluate(model, prep.val_x, prep.val_y, prep, batch_size=2 * bs, device=device)
        metrics = {"epoch": epoch, "train_loss": float(loss_sum) / steps_per_epoch, "val_top1": val,
                   "images_per_s": steps_per_epoch * bs / dt, "elapsed_s": time.perf_counter() - t_start}
        result.history.append(metrics)
        result.epochs_run = epoch
        result.val_top1 = val
        result.best_val_top1 = val if result.best_val_top1 is None else max(result.best_val_top1, val)
        result.train_images_per_s = train_seen / train_time
        result.status = "completed"
        if report is not None and report(dict(metrics)) == "stop":
            result.status = "stopped"
            return
