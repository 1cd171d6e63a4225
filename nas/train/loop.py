"""The proxy trainer: one training step, an epoch of them, evaluation, and `train_arch` around them.

Every training step of the tool is `train_step`: the trainer's (`train_epoch`), the dry-run estimate's and
the benchmarks' (`time_steps`). The optimizer is `make_optimizer`'s fused AdamW or SGD (no weight decay
on biases, norms and Mobile-Former's global tokens) with warm-up then cosine (`lr_at`). Where and how it
runs is one `nas.runtime.Runtime` (device, threads, memory format, precision, compile): by default the model
and its inputs are channels_last on every device, and the forward pass runs under bf16 autocast on CUDA only.

The report contract (how Ray Tune, a progress bar or a test observe training without being imported):
``report(metrics)`` is called once per epoch with the keys ``epoch`` (1-based), ``train_loss``,
``val_top1`` (percent), ``val_loss`` (mean cross-entropy), ``images_per_s`` (training throughput of that
epoch) and ``elapsed_s`` (since the start of training). If it returns the string ``"stop"`` training ends at once with status
``"early_stopped"`` (the metrics reported so far stand); any other return value is ignored.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.config import ArchConfig
from nas.data import ImageData, load_dataset
from nas.errors import ConfigError
from nas.runtime import Runtime
from nas.train.optim import AdamW, Optimizer
from nas.train.pipeline import PreparedData, normalize, prepare_data, train_batch
from nas.train.protocol import ProxyConfig, load_proxy

if TYPE_CHECKING:
    from nas.train.checkpoint import JobCheckpoint

Report = Callable[[dict[str, Any]], Any]


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite; `train_arch` turns it into status ``nan``."""


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
    resumed_after_epoch: int = 0  # a checkpoint of this job held its first epochs (`train_arch`'s checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------
# The pieces


def lr_at(step: int, *, total: int, warmup: int, base: float) -> float:
    """The learning rate of 0-based `step`: linear warm-up over `warmup` steps, then cosine to 0 at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(1.0, t)))


def make_optimizer(model: nn.Module, proxy: ProxyConfig) -> Optimizer:
    """The protocol's fused optimizer; biases, norms and global tokens get no weight decay."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or p is getattr(model, "global_tokens", None) else decay).append(p)
    return optimizer_for(decay, no_decay, proxy)


def optimizer_for(decay: list[torch.Tensor], no_decay: list[torch.Tensor], proxy: ProxyConfig) -> Optimizer:
    """The protocol's fused optimizer over two groups: `decay` with the protocol's weight decay, `no_decay`
    without (the supernet's shared tensors use it too)."""
    groups = [{"params": decay, "weight_decay": proxy.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel for all parameters (about 6x faster steps than the per-tensor loop on CPU for
    # these many-small-tensor networks). AdamW is `nas.train.optim.AdamW`, torch's fused kernel without
    # torch.optim's wrappers (which import torch._dynamo, ~1.1 s a process); SGD, which no shipped protocol
    # uses, is torch.optim's.
    if proxy.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=proxy.lr, momentum=proxy.momentum, nesterov=proxy.momentum > 0,
                               fused=True)
    return AdamW(groups, lr=proxy.lr, betas=(proxy.momentum, 0.999))


def epoch_shape(prep: PreparedData, proxy: ProxyConfig) -> tuple[int, int]:
    """(batch size, steps per epoch). The last partial batch is dropped: BatchNorm needs > 1 sample."""
    n = len(prep.train_x)
    bs = min(proxy.batch_size, n)
    return bs, max(1, n // bs)


def train_step(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, opt: Optimizer,
               crit: nn.Module, *, lr: float | None = None, runtime: Runtime | None = None) -> torch.Tensor:
    """One optimizer step on a prepared batch (see `train_batch`) at `lr` (None: the optimizer's as is);
    returns the detached loss. Autocast as `runtime` says (default: bf16 on CUDA, fp32 elsewhere)."""
    if lr is not None:
        for g in opt.param_groups:
            g["lr"] = lr
    rt = Runtime.of(runtime)
    with rt.autocast(xb.device.type):
        loss = crit(model(rt.inputs(xb)), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def train_epoch(model: nn.Module, prep: PreparedData, proxy: ProxyConfig, opt: Optimizer,
                crit: nn.Module, generator: torch.Generator, *, epoch: int, runtime: Runtime | None = None) -> float:
    """Train 1-based `epoch` of the protocol (one seeded permutation of the training images, the learning
    rate of each step from `lr_at`) and return its mean training loss; NonFiniteLoss if it diverges."""
    bs, steps = epoch_shape(prep, proxy)
    total = steps * proxy.epochs
    warmup = int(round(proxy.warmup_epochs * steps))
    device = prep.train_x.device
    check_every = 25 if device.type == "cuda" else 1  # on CUDA, avoid a sync per step
    model.train()
    perm = torch.randperm(len(prep.train_x), generator=generator, device=device)
    loss_sum = torch.zeros((), device=device)
    for i in range(steps):
        xb, yb = train_batch(prep, perm[i * bs:(i + 1) * bs], proxy, generator)
        loss = train_step(model, xb, yb, opt, crit, runtime=runtime,
                          lr=lr_at((epoch - 1) * steps + i, total=total, warmup=warmup, base=proxy.lr))
        loss_sum += loss.float()
        if (i % check_every == check_every - 1 or i == steps - 1) and not torch.isfinite(loss_sum):
            raise NonFiniteLoss(f"the training loss became non-finite at epoch {epoch}, step {i + 1} "
                                f"(lr {proxy.lr:g}); lower the learning rate or check the architecture")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return float(loss_sum) / steps


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prep: PreparedData, *, batch_size: int,
             runtime: Runtime | None = None, fold: bool = True) -> float:
    """Top-1 (percent) of `model` on uint8 images `x` (normalised with `prep`'s statistics)."""
    return evaluate_metrics(model, x, y, prep, batch_size=batch_size, runtime=runtime, fold=fold)[0]


def eval_batch_size(train_batch: int) -> int:
    """The evaluation batch a protocol asks for: 2x its training batch. On the CPU, `evaluate_metrics` grows it
    where the network's activations allow (`cpu_eval_batch`); results do not depend on it (eval-mode BatchNorm)."""
    return 2 * train_batch


# CPU evaluation batches grow (doubling, up to MAX_EVAL_BATCH) while the network's largest activation map for
# the whole batch stays within EVAL_ACTIVATION_BYTES, half of this 2-core EPYC's 32 MiB L3 cache. There, at batch
# 64 rather than 32, Mobile-Former-151M (96 KiB maps an image at 32 px) evaluated 1.1-1.2x as fast and
# MobileViT-XS (512 KiB maps) 0.8-0.85x (bench/eval_speed.py; BENCHMARKS.md, "Evaluation").
EVAL_ACTIVATION_BYTES = 16 * 2**20
MAX_EVAL_BATCH = 128


def cpu_eval_batch(model: nn.Module, sample: torch.Tensor, batch_size: int) -> int:
    """`batch_size`, doubled while the largest output of any leaf module of `model` for one image (`sample`,
    a prepared [1, C, H, W] input, run once) times the batch fits EVAL_ACTIVATION_BYTES, up to MAX_EVAL_BATCH.
    A batch that cannot grow is returned without the probe's forward pass (a one-shot score evaluates at the cap,
    where the probe took 21 ms of a 600 ms score; BENCHMARKS.md, "One-shot scores without work they did not need")."""
    if 2 * batch_size > MAX_EVAL_BATCH:
        return batch_size
    largest = 0

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        nonlocal largest
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * out.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules() if next(m.children(), None) is None]
    try:
        model(sample)
    finally:
        for h in handles:
            h.remove()
    b = batch_size
    while 2 * b <= MAX_EVAL_BATCH and 2 * b * largest <= EVAL_ACTIVATION_BYTES:
        b *= 2
    return b


def evaluate_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prep: PreparedData, *,
                     batch_size: int, runtime: Runtime | None = None, fold: bool = True) -> tuple[float, float]:
    """(top-1 in percent, mean cross-entropy) of `model` on uint8 images `x` and labels `y`, in eval mode,
    with its conv-BatchNorm pairs folded for the duration (`nas.blocks.common.batchnorm_folded`; `fold=False`:
    as it is), in batches of `batch_size` (on the CPU grown where the activations allow, `cpu_eval_batch`)."""
    from nas.blocks.common import batchnorm_folded

    model.eval()
    if not fold:
        return _metrics(model, x, y, prep, batch_size=batch_size, runtime=runtime)
    with batchnorm_folded(model):
        return _metrics(model, x, y, prep, batch_size=batch_size, runtime=runtime)


@torch.inference_mode()  # ~13% faster than no_grad on CPU for these networks (BENCHMARKS.md)
def _metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prep: PreparedData, *,
             batch_size: int, runtime: Runtime | None = None, grow: bool = True) -> tuple[float, float]:
    rt = Runtime.of(runtime)
    if grow and x.device.type == "cpu" and len(x) > batch_size:
        with rt.autocast(x.device.type):
            batch_size = cpu_eval_batch(model, rt.inputs(normalize(x[:1], prep)), batch_size)
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        xb = rt.inputs(normalize(x[i:i + batch_size], prep))
        with rt.autocast(x.device.type):
            logits = model(xb)
        yb = y[i:i + batch_size]
        correct += int((logits.argmax(1) == yb).sum())
        loss += float(nn.functional.cross_entropy(logits.float(), yb, reduction="sum"))
    n = max(1, len(x))
    return 100.0 * correct / n, loss / n


def _runtime(runtime: Runtime | dict | None, device: str | torch.device | None, threads: int | None) -> Runtime:
    """The job's runtime: `runtime` with an explicit `device` or `threads` argument in place of its own."""
    rt = Runtime.of(runtime).replace(device=None if device is None else str(device), threads=threads)
    return rt.resolved()


def _model(arch: ArchConfig, data: ImageData, proxy: ProxyConfig, runtime: Runtime) -> nn.Module:
    """The network of `arch` for `data` at the proxy resolution, seeded, placed as `runtime` says (by
    default channels_last: oneDNN's depthwise and 1x1 convolutions run ~12-18% faster in it on this CPU,
    BENCHMARKS.md; cuDNN's with bf16 too)."""
    from nas.builder import build_model

    torch.manual_seed(proxy.seed)
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.in_chans, input_size=proxy.resolution)
    return runtime.place(model)


# ---------------------------------------------------------------------------------------------------------
# A whole trial, and the timing of its step


def train_arch(arch: ArchConfig | str, data: ImageData | str | None, proxy: ProxyConfig | None = None, *,
               device: str | torch.device | None = None, report: Report | None = None, final: bool = False,
               threads: int | None = None, init: str | Path | dict | None = None,
               runtime: Runtime | dict | None = None, checkpoint: str | Path | None = None,
               curve: bool = True) -> TrainResult:
    """Proxy-train `arch` on `data` (an ImageData, or a dataset name/path) under `proxy` (default protocol
    if None) and return a TrainResult; see the module docstring for the report contract. `final` also
    scores the test split. `init` (a state_dict or its file, e.g. from `nas supernet extract`) replaces the
    initial weights. `runtime` says where and how it runs (default: `Runtime()`, fp32 channels_last on the
    CPU); `device` and `threads`, when given, replace the runtime's own. `checkpoint` (a file) makes a killed
    job resume where it stood (`nas.train.checkpoint`): its state is saved there between epochs, a saved state of
    the same job is resumed from, and the file is removed when this returns. `wall_s` then counts the earlier
    processes' time too. `curve` False validates after the last epoch only (the other epochs report
    ``val_top1`` None): for jobs whose earlier epochs' validation nothing reads; the last epoch's is the same.

    Status: ``completed``; ``nan`` (a non-finite loss ended training, with a message); ``early_stopped``
    (`report` returned "stop"); ``failed`` (the network raised while training, e.g. out of memory; the
    error text is kept). Configuration and data problems raise NasError instead.
    """
    from nas.builder import count_params
    from nas.variants import resolve_arch

    arch = resolve_arch(arch)
    proxy = proxy or load_proxy()
    if not isinstance(data, ImageData):
        data = load_dataset(data)
    rt = _runtime(runtime, device, threads)
    device = rt.torch_device
    t_start = time.perf_counter()
    result = TrainResult(status="failed", arch_id=arch.arch_id, proxy_hash=proxy.hash, dataset=data.name,
                         device=str(device))
    ck = None
    if checkpoint is not None:
        from nas.train.checkpoint import JobCheckpoint, job_key

        ck = JobCheckpoint(Path(checkpoint), job_key(arch_id=arch.arch_id, proxy_hash=proxy.hash, final=final,
                                                    runtime_key=rt.key, init=init))
    with rt.applied():
        try:
            prep = prepare_data(data, proxy, device, final=final)
            model = _model(arch, data, proxy, rt)
            if init is not None:
                load_init(model, init)
            result.params = count_params(model)
            _train(model, prep, proxy, report, result, t_start, rt, ck, curve=curve)
            if final and result.status == "completed":
                result.test_top1 = evaluate(model, prep.test_x, prep.test_y, prep,
                                            batch_size=eval_batch_size(proxy.batch_size),
                                            runtime=rt)
        except NonFiniteLoss as e:
            result.status = "nan"
            result.error = str(e)
        except (RuntimeError, ValueError, IndexError, torch.OutOfMemoryError) as e:
            result.status = "failed"
            result.error = f"{type(e).__name__}: {e}".strip()[:2000]
        finally:
            result.wall_s = (ck.wall_before_s if ck else 0.0) + time.perf_counter() - t_start
    if ck is not None:  # returned (not killed or interrupted): the job is over, whatever its status
        ck.remove()
    return result


def read_weights(path: str | Path) -> dict:
    """The state_dict in `path`; a ConfigError when there is no such file or it holds no state_dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no weights file {p}", "pass a state_dict file, e.g. from `nas supernet extract`")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - pickle, zip and torch's own errors alike: not a weights file
        state = None
    if not isinstance(state, dict):
        raise ConfigError(f"{p} is not a weights file (a state_dict saved by torch.save)",
                          "pass the .pt file that `nas supernet extract` writes for this architecture")
    return state


def load_init(model: nn.Module, init: str | Path | dict) -> None:
    """Load initial weights into `model`; a ConfigError when they are not this network's."""
    state = init if isinstance(init, dict) else read_weights(init)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        raise ConfigError(f"the initial weights do not fit this network: {lines[-1][:300]}",
                          "extract them for this architecture and dataset (nas supernet extract)") from None


def _train(model: nn.Module, prep: PreparedData, proxy: ProxyConfig, report: Report | None,
           result: TrainResult, t_start: float, runtime: Runtime, ck: JobCheckpoint | None = None, *,
           curve: bool = True) -> None:
    """The epochs of `train_arch`: train, validate (after every epoch, or the last only where `curve` is False),
    record into `result`, report; resumed from and saved to `ck` where one is given."""
    bs, steps = epoch_shape(prep, proxy)
    opt = make_optimizer(model, proxy)
    crit = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
    gen = torch.Generator(device=prep.train_x.device).manual_seed(proxy.seed + 1)
    train_time = 0.0
    saved = ck.load() if ck is not None else None
    if saved is not None:
        train_time = _restore(saved, model, opt, gen, result)
        result.resumed_after_epoch = result.epochs_run
        result.train_images_per_s = result.epochs_run * steps * bs / train_time
        t_start -= ck.wall_before_s  # elapsed_s counts from the job's start, in whichever process
    for epoch in range(result.epochs_run + 1, proxy.epochs + 1):
        t0 = time.perf_counter()
        loss = train_epoch(model, prep, proxy, opt, crit, gen, epoch=epoch, runtime=runtime)
        dt = time.perf_counter() - t0
        train_time += dt
        val = val_loss = None
        if curve or epoch == proxy.epochs:
            val, val_loss = evaluate_metrics(model, prep.val_x, prep.val_y, prep, batch_size=eval_batch_size(bs),
                                             runtime=runtime)
        metrics = {"epoch": epoch, "train_loss": loss, "val_top1": val, "val_loss": val_loss,
                   "images_per_s": steps * bs / dt,
                   "elapsed_s": time.perf_counter() - t_start}
        result.history.append(metrics)
        result.epochs_run = epoch
        result.val_top1 = val
        if val is not None:
            result.best_val_top1 = val if result.best_val_top1 is None else max(result.best_val_top1, val)
        result.train_images_per_s = epoch * steps * bs / train_time
        result.status = "completed"
        if ck is not None and epoch < proxy.epochs and ck.due():
            ck.save(_state(model, opt, gen, result, train_time), wall_s=time.perf_counter() - t_start)
        if report is not None and report(dict(metrics)) == "stop":
            result.status = "early_stopped"
            return


def _state(model: nn.Module, opt: Optimizer, gen: torch.Generator, result: TrainResult,
           train_time: float) -> dict[str, Any]:
    """What a resumed job needs to go on exactly as an uninterrupted one (`_restore` reads it back)."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(), "history": result.history, "epochs_run": result.epochs_run,
             "best_val_top1": result.best_val_top1, "train_time": train_time}
    if gen.device.type == "cuda":  # dropout on the GPU draws from its own generator
        state["cuda_rng"] = torch.cuda.get_rng_state(gen.device)
    return state


def _restore(state: dict[str, Any], model: nn.Module, opt: Optimizer, gen: torch.Generator,
             result: TrainResult) -> float:
    """Put a saved job state (`_state`) back into the model, optimizer, generators and `result`; returns the
    training seconds so far."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], gen.device)
    result.history = [dict(h) for h in state["history"]]
    result.epochs_run = int(state["epochs_run"])
    last = result.history[-1]
    result.val_top1 = last["val_top1"]
    result.best_val_top1 = state["best_val_top1"]
    result.status = "completed"
    return float(state["train_time"])


def time_steps(arch: ArchConfig | str, proxy: ProxyConfig, data: ImageData, *, steps: int = 2,
               threads: int | None = None, device: str | torch.device | None = None,
               runtime: Runtime | dict | None = None) -> float:
    """Seconds per training image of `arch` under `proxy`: the fastest of `steps` timed training steps
    after one warm-up step, each exactly the trainer's (its data subset, augmentation, normalisation,
    fused optimizer and runtime). Nothing is validated or kept."""
    from nas.variants import resolve_arch

    arch = resolve_arch(arch)
    rt = _runtime(runtime, device, threads)
    device = rt.torch_device
    with rt.applied():
        prep = prepare_data(data, proxy, device)
        model = _model(arch, data, proxy, rt).train()
        opt = make_optimizer(model, proxy)
        crit = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
        gen = torch.Generator(device=device).manual_seed(proxy.seed + 1)
        bs, _ = epoch_shape(prep, proxy)
        best = math.inf
        for i in range(1 + max(1, steps)):
            idx = torch.randperm(len(prep.train_x), generator=gen, device=device)[:bs]
            t = time.perf_counter()
            xb, yb = train_batch(prep, idx, proxy, gen)
            train_step(model, xb, yb, opt, crit, runtime=rt)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i > 0:
                best = min(best, time.perf_counter() - t)
    return best / bs


def time_evaluation(arch: ArchConfig | str, proxy: ProxyConfig, data: ImageData, *, images: int = 256,
                    threads: int | None = None, device: str | torch.device | None = None,
                    runtime: Runtime | dict | None = None) -> float:
    """Seconds per evaluated image of `arch` under `proxy`: `evaluate_metrics` (the trainer's evaluation:
    folded, at its batch) over `images` validation images, after the same evaluation once as a warm-up (its
    first batches build oneDNN's primitives). Its weights are the untrained ones: the time does not depend on
    them."""
    from nas.variants import resolve_arch

    arch = resolve_arch(arch)
    rt = _runtime(runtime, device, threads)
    with rt.applied():
        prep = prepare_data(data, proxy, rt.torch_device)
        model = _model(arch, data, proxy, rt)
        bs = eval_batch_size(proxy.batch_size)
        n = max(1, min(images, len(prep.val_y)))
        evaluate_metrics(model, prep.val_x[:n], prep.val_y[:n], prep, batch_size=bs, runtime=rt)
        t = time.perf_counter()
        evaluate_metrics(model, prep.val_x[:n], prep.val_y[:n], prep, batch_size=bs, runtime=rt)
        return (time.perf_counter() - t) / n
