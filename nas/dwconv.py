"""Depthwise 3x3 convolutions with a channel multiplier on the CPU, in a small C kernel of this package.

Mobile-Former's depthwise convolutions have a channel multiplier (out = in x `dw_mult`, e.g. 12 -> 24 or
12 -> 72 channels). oneDNN runs those with its generic grouped kernel, which pads each group's one input and few
output channels to blocks of 16: at batch 16 on the 2-core Zen 4 EPYC of BENCHMARKS.md their forward and backward
took 10.5-12.7 ms of a 110-160 ms mobile_former_151m step, 20-70x what the memory allows. oneDNN's weight gradient
takes the same generic kernel on 2x2 maps, multiplier or not. `dwconv.c` does these convolutions (padding 1,
stride 1 or 2, float32, channels_last maps) with every input row expanded to the output's channels, so that each
of its loops is one long vector loop: 1.8-4.3x as fast on those shapes (2.45x summed; bench/depthwise_conv.py),
and whole `nas train mobile_former_151m` confirm commands 1.11x [1.03, 1.19] as fast, n=5 side-by-side pairs
(bench/speed_vs.py; BENCHMARKS.md, "A depthwise kernel").

Same function, same parameters; the sums run in another order, so values and gradients match oneDNN's to float
rounding (about 1e-6 relative), as with another thread count: the baseline cache does not key on it.

Where it runs (`wanted`): `nas.blocks.common.Conv2d` takes it for a depthwise 3x3 conv with a multiplier, or on
a map of at most 2x2, of a float32 channels_last CPU tensor, at one torch thread (the kernel is serial; at more
threads oneDNN's parallel kernels stay), outside tracing and compiling. Elsewhere, and on a plain depthwise
conv of a larger map (oneDNN's own depthwise kernels are as fast or faster there), nothing changes.

Built once per machine with the system's C compiler (`cc`/`gcc`, `-O3 -march=native`) into the user's cache
folder, named by the source and the CPU's features (a shared home folder never hands one CPU another's build).
Without a compiler, or with NAS_DWCONV=0, oneDNN runs them as before. `active()` says whether this process
runs it; run.yaml's `runtime.dwconv_kernel` and environment.json record it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch.autograd.function import once_differentiable

ENV_SWITCH = "NAS_DWCONV"  # "0": never use the kernel
SOURCE = Path(__file__).with_name("dwconv.c")
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]


def _cpu_features() -> str:
    """The CPU's model and flags (a build with -march=native is valid only where they are the same)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = [x for x in f if x.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def library_path() -> Path | None:
    """The compiled kernel (built on first use; None where it cannot be built here)."""
    from nas.blas import build_shared, cache_dir

    try:
        src = SOURCE.read_bytes()
    except OSError:
        return None
    key = hashlib.sha1(src + " ".join(FLAGS).encode() + _cpu_features().encode()).hexdigest()[:12]
    return build_shared(cache_dir() / f"dwconv-{key}.so", SOURCE, FLAGS)


@functools.cache
def _lib() -> Any:
    """The loaded kernel, or None (not wanted, not built, not loadable)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    so = library_path()
    if so is None:
        return None
    try:
        lib = ctypes.CDLL(str(so))
    except OSError:
        return None
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.dwconv_workspace.argtypes = [i] * 7
    lib.dwconv_workspace.restype = ctypes.c_size_t
    lib.dwconv_forward.argtypes = [p, p, p, p] + [i] * 6 + [p]
    lib.dwconv_forward.restype = None
    lib.dwconv_backward.argtypes = [p, p, p, p, p] + [i] * 6 + [p]
    lib.dwconv_backward.restype = None
    return lib


def active() -> bool:
    """Whether this process runs depthwise convolutions with a multiplier in the kernel (built and not off)."""
    return _lib() is not None


def wanted(conv: torch.nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether `conv` of `x` runs in the kernel (see the module docstring)."""
    if not (conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.dilation == (1, 1)
            and conv.stride in ((1, 1), (2, 2)) and conv.groups == conv.in_channels
            and conv.padding_mode == "zeros" and x.dim() == 4 and x.numel() > 0 and x.device.type == "cpu"
            and x.dtype == torch.float32 and conv.weight.dtype == torch.float32):
        return False
    if conv.out_channels == conv.in_channels and x.shape[-1] * x.shape[-2] > 4:
        return False  # a plain depthwise conv of a larger map: oneDNN's depthwise kernels
    return (x.is_contiguous(memory_format=torch.channels_last) and torch.get_num_threads() == 1
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu") and active())


def _dims(x: torch.Tensor, out_channels: int, stride: int) -> tuple[int, ...]:
    b, c, h, w = x.shape
    return b, h, w, c, out_channels // c, stride


def _workspace(backward: bool, dims: tuple[int, ...]) -> torch.Tensor:
    return torch.empty(int(_lib().dwconv_workspace(int(backward), *dims)), dtype=torch.float32)


def _check(x: torch.Tensor, weight: torch.Tensor, stride: int, bias: torch.Tensor | None) -> None:
    """Refuse what the C kernel cannot take before any pointer reaches it (`wanted` says where it is taken)."""
    c = x.shape[1] if x.dim() == 4 else 0
    o = weight.shape[0]
    if not (x.dim() == 4 and c > 0 and min(x.shape) > 0 and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and weight.device.type == "cpu" and tuple(weight.shape[1:]) == (1, 3, 3)
            and o % c == 0 and stride in (1, 2) and (bias is None or tuple(bias.shape) == (o,))):
        raise ValueError(f"nas.dwconv takes a float32 CPU map [B, C, H, W] and weights [C * m, 1, 3, 3] at stride 1 or 2, "
                         f"not {tuple(x.shape)} {x.dtype} and {tuple(weight.shape)} {weight.dtype} at stride {stride}")
    if not active():
        raise RuntimeError("nas.dwconv's kernel is not built here (no C compiler, or NAS_DWCONV=0)")


def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The convolution's output (no autograd; `x` float32 on the CPU, `weight` [O, 1, 3, 3], O a multiple of x's
    channels, `stride` 1 or 2; anything else raises ValueError)."""
    _check(x, weight, stride, bias)
    return _forward(x, weight, stride, bias)


def _forward(x: torch.Tensor, weight: torch.Tensor, stride: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    x = x.contiguous(memory_format=torch.channels_last)
    w = weight.detach().contiguous()
    b = None if bias is None else bias.detach().contiguous()
    dims = _dims(x, w.shape[0], stride)
    bsz, h, wd, _c, _m, s = dims
    y = torch.empty((bsz, w.shape[0], (h - 1) // s + 1, (wd - 1) // s + 1), memory_format=torch.channels_last)
    ws = _workspace(False, dims)
    _lib().dwconv_forward(x.data_ptr(), w.data_ptr(), None if b is None else b.data_ptr(), y.data_ptr(), *dims,
                          ws.data_ptr())
    return y


class _Depthwise3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        return _forward(x, weight, stride)

    @staticmethod
    @once_differentiable  # its backward is not differentiable again: a double backward raises instead of lying
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gy = gy.contiguous(memory_format=torch.channels_last)
        w = weight.detach().contiguous()
        dims = _dims(x, w.shape[0], ctx.stride)
        gx = torch.empty_like(x, memory_format=torch.channels_last) if need_x else None
        gw = torch.empty(w.shape, dtype=torch.float32) if need_w else None
        ws = _workspace(True, dims)
        _lib().dwconv_backward(x.data_ptr(), w.data_ptr(), gy.data_ptr(), None if gx is None else gx.data_ptr(),
                               None if gw is None else gw.data_ptr(), *dims, ws.data_ptr())
        return gx, gw, None


def conv(x: torch.Tensor, weight: torch.Tensor, stride: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The depthwise 3x3 convolution (padding 1) of `x` by `weight` ([O, 1, 3, 3], O a multiple of x's
    channels) at `stride` (1 or 2), with autograd; `bias` added by torch. Anything else raises ValueError."""
    _check(x, weight, stride, bias)
    y = _Depthwise3x3.apply(x, weight, stride)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


__all__ = ["ENV_SWITCH", "active", "conv", "forward", "library_path", "wanted"]
