"""Where and how networks run: one frozen object for the trainer, the one-shot scorer and the supernet.

`Runtime` holds the device, the torch threads per job, the memory format, the precision, whether the
model is compiled and whether the process keeps freed memory for reuse (`keep_freed_memory`). A run records it
in run.yaml (`runtime:`) and environment.json, and the cross-run cache of baseline results keys on
`Runtime.key`: a figure trained in bf16 or compiled is never reused for an fp32 run.

Defaults are what BENCHMARKS.md measured on CPU ("Training speed: profile and options tried"): fp32 and
channels_last (oneDNN's depthwise and 1x1 convolutions are 12-18% faster in it), no compile (measured idle on
this 2-core CPU: no faster per step than eager at the protocol's sizes, after a 130-245 s first compile).
``precision: auto`` is bf16 autocast on CUDA, fp32 elsewhere (bf16 changes the numbers, and trained slower on
both CPUs measured, with native bf16 or without); ``device: auto`` is CUDA where there is one.

``keep_freed_memory`` (default on): depending on what else sits on its heap, glibc's malloc can hand large
freed blocks straight back to the kernel, so each training step and evaluation batch page-faults its
activations in again. For mobilevit_xs, some processes took 130,560 minor faults per 512 evaluated images
(`bench/runtime_options.py`), others none. With it on, `apply` sets glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB
once per process, so freed activations are always reused (no faults). Where glibc did fault, that made
MobileViT-XS evaluate 1.2-1.3x as fast; where it did not, speed is unchanged within noise (BENCHMARKS.md, "A
second machine"). Same numbers, more resident memory; a no-op off glibc.

``tcmalloc`` and ``mkl_intel_path`` are observed, not chosen: what the process was started with (`nas.preload`:
the `nas` command preloads tcmalloc where the system has it, and MKL's shim on an AMD CPU). So is
``dwconv_kernel``: whether depthwise convolutions with a channel multiplier run in `nas.dwconv`'s C kernel (built
with the system's C compiler; NAS_DWCONV=0 turns it off). None of them changes the arithmetic (the kernels sum in
another order, as another thread count does), so none is in the cache key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nas.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
MEMORY_FORMATS = ("channels_last", "contiguous")


@dataclass(frozen=True)
class Runtime:
    """How a job runs (see the module docstring). `threads` None leaves torch's setting as it is."""

    device: str = "cpu"
    threads: int | None = None
    memory_format: str = "channels_last"
    precision: str = "auto"
    compile: bool = False
    keep_freed_memory: bool = True
    # observed, not chosen: whether MKL in the process that made this object takes its Intel kernels on an AMD
    # CPU (`nas.blas`: the `nas` command preloads a shim; `--no-mkl-intel-path` turns it off)
    mkl_intel_path: bool = field(default_factory=lambda: _mkl_intel_path())
    # observed, not chosen: whether the process that made this object runs on tcmalloc (`nas.malloc`: the `nas`
    # command preloads it where the system has it; `--no-tcmalloc` turns it off)
    tcmalloc: bool = field(default_factory=lambda: _tcmalloc())
    # observed, not chosen: whether the process that made this object runs depthwise convolutions with a channel
    # multiplier in `nas.dwconv`'s C kernel (at one thread; NAS_DWCONV=0 turns it off)
    dwconv_kernel: bool = field(default_factory=lambda: _dwconv_kernel())

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}",
                              "use --precision fp32 (the default on CPU) or bf16")
        if self.memory_format not in MEMORY_FORMATS:
            raise ConfigError(f"memory format {self.memory_format!r} is not one of {', '.join(MEMORY_FORMATS)}",
                              "use --memory-format channels_last (the default) or contiguous")
        for name in ("compile", "keep_freed_memory", "mkl_intel_path", "tcmalloc", "dwconv_kernel"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"runtime setting {name} is {getattr(self, name)!r}, not true or false",
                                  f"set {name}: true or {name}: false")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, numbers.Integral) or self.threads < 1):
            raise ConfigError(f"threads {self.threads!r} must be a whole number of at least 1",
                              "give a positive thread count")
        dev = str(self.device)
        if dev != "auto" and dev.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device {dev!r} is not cpu, cuda, cuda:N or auto", "use --device cpu or cuda")

    @classmethod
    def of(cls, value: Runtime | dict[str, Any] | None) -> Runtime:
        """A Runtime from itself, its dict (`to_dict`, as run.yaml and Ray carry it) or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Runtime):
            return value
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"unknown runtime setting(s) {', '.join(unknown)}", f"use only {', '.join(sorted(names))}")
        return cls(**value)

    def replace(self, **changes: Any) -> Runtime:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def on_cpu(self) -> Runtime:
        return dataclasses.replace(self, device="cpu")

    def resolved(self) -> Runtime:
        """`auto` settings made concrete on this machine (device: CUDA if any; precision: bf16 on CUDA)."""
        import torch

        dev = self.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        elif dev.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {dev!r} requested but CUDA is not available here", "use --device cpu")
        prec = self.precision
        if prec == "auto":
            prec = "bf16" if dev.startswith("cuda") else "fp32"
        return dataclasses.replace(self, device=dev, precision=prec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """What changes how a network computes (resolved precision, memory format, compile, device kind): the
        baseline cache keys on it. Threads are left out (they change only the order of float sums), and so is
        the allocator settings (glibc's thresholds, tcmalloc: they change no number), MKL's kernel path and the
        depthwise kernel (like threads, they change the order of float sums, not the arithmetic)."""
        r = self.resolved()
        d = {**r.to_dict(), "device": r.device.split(":")[0]}
        d.pop("threads")
        d.pop("keep_freed_memory")
        d.pop("mkl_intel_path")
        d.pop("tcmalloc")
        d.pop("dwconv_kernel")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    # -- what the trainer, scorer and supernet use ------------------------------------------------------
    @property
    def torch_device(self) -> Any:
        import torch

        return torch.device(self.resolved().device)

    @property
    def torch_memory_format(self) -> Any:
        import torch

        return torch.channels_last if self.memory_format == "channels_last" else torch.contiguous_format

    def autocast(self, device_type: str) -> Any:
        """The autocast context of this runtime's precision for tensors on `device_type`."""
        import torch

        bf16 = self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda")
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)

    def place(self, model: Any) -> Any:
        """`model` on this runtime's device in its memory format, compiled if asked."""
        import torch

        model = model.to(self.torch_device, memory_format=self.torch_memory_format)
        if self.torch_device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if self.compile:
            model = torch.compile(model)
        return model

    def inputs(self, x: Any) -> Any:
        """A batch in this runtime's memory format."""
        return x.contiguous(memory_format=self.torch_memory_format) if x.dim() == 4 else x

    def apply(self) -> int:
        """Set this runtime's process settings: torch's intra-op threads to `threads` (when given) and, if
        `keep_freed_memory`, the allocator's thresholds (`keep_freed_memory()`: once per process, for its
        life). Returns torch's thread count from before."""
        import torch

        if self.keep_freed_memory:
            keep_freed_memory()
        prev = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
        return prev

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The block runs under `apply`'s settings; torch's thread count is restored after it."""
        import torch

        prev = self.apply()
        try:
            yield
        finally:
            if self.threads is not None:
                torch.set_num_threads(prev)


@functools.cache  # fixed when the process starts (LD_PRELOAD)
def _mkl_intel_path() -> bool:
    from nas.blas import active

    return active()


@functools.cache  # fixed when the process starts (LD_PRELOAD)
def _tcmalloc() -> bool:
    from nas.malloc import active

    return active()


def _dwconv_kernel() -> bool:
    from nas.dwconv import active  # cached there: built or found once per process

    return active()


@functools.cache  # once per process: the settings stay for its life
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MiB for reuse (mmap threshold 32 MiB, trim
    threshold 1 GiB) instead of returning them to the kernel; True if the process runs on glibc and both
    settings took."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def add_runtime_arguments(p: Any) -> None:
    """The runtime flags of `nas train` and `nas search` (argparse)."""
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default): bf16 autocast on CUDA, fp32 on CPU; fp32; bf16 (autocast: fast only where "
                        "the CPU has native bf16, and it can change verdicts)")
    p.add_argument("--memory-format", choices=MEMORY_FORMATS, default="channels_last",
                   help="tensor layout of the network and its inputs (default channels_last: faster convolutions)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile each network (off by default: on a 2-core CPU no faster per step at 32 px, "
                        "after a 2-4 min first compile; try it on a GPU or at larger sizes)")
    p.add_argument("--no-keep-freed-memory", dest="keep_freed_memory", action="store_false",
                   help="leave glibc's malloc thresholds as they are (by default each job keeps freed activations for "
                        "reuse instead of page-faulting them in again: same numbers, more resident memory)")
    p.add_argument("--no-mkl-intel-path", dest="mkl_intel_path", action="store_false",
                   help="on an AMD CPU, leave MKL on its generic AVX2 kernels (by default the `nas` command preloads a "
                        "shim so that MKL picks its kernels by the CPU's features: 1.1-1.2x faster Mobile-Former "
                        "training measured; or set NAS_MKL_INTEL_PATH=0). Read when the command starts")
    p.add_argument("--no-tcmalloc", dest="tcmalloc", action="store_false",
                   help="run on glibc's malloc (by default the `nas` command preloads tcmalloc where the system has "
                        "it, e.g. Debian's libtcmalloc-minimal4: whole confirm jobs 1.06-1.13x faster measured, the "
                        "same numbers; or set NAS_TCMALLOC=0, or NAS_TCMALLOC=/path/to/libtcmalloc.so). Read when "
                        "the command starts")


__all__ = ["Runtime", "PRECISIONS", "MEMORY_FORMATS", "add_runtime_arguments", "keep_freed_memory"]
