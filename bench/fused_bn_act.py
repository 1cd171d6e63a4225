"""An option tried for issue 16 and not kept: BatchNorm (training) and its activation fused into one C kernel
(bench/fused_bn_act.c: batch statistics, normalization and SiLU/ReLU/Hardswish in two passes forward, two
backward, recomputing the activation's input instead of saving it), called through ctypes from an autograd
Function on channels-last float32 maps, in place of ConvBNAct's BatchNorm2d + activation.

    .venv/bin/python bench/fused_bn_act.py [--archs mobilevit_xs mobile_former_151m] [--rounds 2]

Prints (1) the largest relative gaps of outputs, gradients and running statistics against eager PyTorch for
each activation, (2) forward+backward ms of the op alone at MobileViT-XS shapes, eager against fused, and (3)
the median ms of a whole training step (confirm protocol, batch 16, 1 thread, steps 6-40), eager against
fused, each in a fresh process with the MKL shim where `nas` uses it, alternating round by round.
Compiled with `cc -O3 -march=native -fno-math-errno -fno-trapping-math` into a temporary folder.
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(__file__).with_suffix(".c")


def build(out: Path) -> Path:
    so = out / "fused_bn_act.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math",
                    "-o", str(so), str(SRC), "-lm"], check=True)
    return so


def fused_module(so: Path):
    """The autograd Function and a ConvBNAct.forward that uses it in training (eager elsewhere)."""
    import torch
    from torch import nn

    lib = ctypes.CDLL(str(so))
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bn_act_forward.argtypes = [p, p, i64, i64, p, p, ctypes.c_float, ctypes.c_int, p]
    lib.bn_act_backward.argtypes = [p, p, p, i64, i64, p, p, p, ctypes.c_int, p, p]
    cl = torch.channels_last

    class BNAct(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b, act, eps):
            c = x.shape[1]
            y, stats = torch.empty_like(x, memory_format=cl), torch.empty(3, c)
            lib.bn_act_forward(x.data_ptr(), y.data_ptr(), x.numel() // c, c, w.data_ptr(), b.data_ptr(), eps, act,
                               stats.data_ptr())
            ctx.save_for_backward(x, w, b, stats)
            ctx.act = act
            ctx.mark_non_differentiable(stats)
            return y, stats

        @staticmethod
        def backward(ctx, gy, _):
            x, w, b, stats = ctx.saved_tensors
            gy = gy.contiguous(memory_format=cl)
            c = x.shape[1]
            dx, dw, db = torch.empty_like(x, memory_format=cl), torch.empty(c), torch.empty(c)
            lib.bn_act_backward(gy.data_ptr(), x.data_ptr(), dx.data_ptr(), x.numel() // c, c, w.data_ptr(),
                                b.data_ptr(), stats.data_ptr(), ctx.act, dw.data_ptr(), db.data_ptr())
            return dx, dw, db, None, None

    acts = {nn.Identity: 0, nn.ReLU: 1, nn.SiLU: 2, nn.Hardswish: 3}

    def forward(self, x):
        x = self.conv(x)
        bn, act = self.bn, acts.get(type(self.act))
        if (self.training and act is not None and isinstance(bn, nn.BatchNorm2d) and bn.momentum is not None
                and x.dtype == torch.float32 and x.is_contiguous(memory_format=cl)):
            y, stats = BNAct.apply(x, bn.weight, bn.bias, act, bn.eps)
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                bn.running_mean.lerp_(stats[0], bn.momentum)
                bn.running_var.lerp_(stats[2], bn.momentum)
            return y
        return self.act(bn(x))

    return BNAct, forward


def check(so: Path) -> None:
    import copy

    import torch

    from nas.blocks.common import ConvBNAct

    _, forward = fused_module(so)
    torch.manual_seed(0)
    for act in ("none", "relu", "swish", "hswish"):
        m = ConvBNAct(24, 48, 3, act=act).to(memory_format=torch.channels_last).train()
        m2 = copy.deepcopy(m)
        x = torch.randn(16, 24, 17, 17).contiguous(memory_format=torch.channels_last) * 3 + 1
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = m(x1), forward(m2, x2)
        g = torch.randn_like(y1)
        (y1 * g).sum().backward()
        (y2 * g).sum().backward()

        def gap(a, b):
            return f"{((a - b).abs().max() / a.abs().max()).item():.1e}"

        print(f"  {act:<7} y {gap(y1, y2)}  dx {gap(x1.grad, x2.grad)}  dw {gap(m.bn.weight.grad, m2.bn.weight.grad)}"
              f"  db {gap(m.bn.bias.grad, m2.bn.bias.grad)}  running mean {gap(m.bn.running_mean, m2.bn.running_mean)}"
              f"  var {gap(m.bn.running_var, m2.bn.running_var)}")


def micro(so: Path) -> None:
    import torch
    from torch import nn

    bnact, _ = fused_module(so)
    for shape in ((16, 128, 32, 32), (16, 32, 32, 32), (16, 256, 8, 8), (16, 16, 32, 32)):
        x = torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_()
        g = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
        bn, act = nn.BatchNorm2d(shape[1]), nn.SiLU(inplace=True)
        res = {}
        def eager(x=x, g=g, bn=bn, act=act):
            act(bn(x)).backward(g)

        def fused(x=x, g=g, bn=bn):
            bnact.apply(x, bn.weight, bn.bias, 2, 1e-5)[0].backward(g)

        for name, f in (("eager", eager), ("fused", fused)):
            for _ in range(3):
                f()
            t = time.perf_counter()
            for _ in range(20):
                f()
            res[name] = (time.perf_counter() - t) / 20 * 1000
        print(f"  {str(list(shape)):<18} BN+SiLU forward+backward: eager {res['eager']:.2f} ms, fused {res['fused']:.2f} ms")


STEP = """
import sys, time, torch
torch.set_num_threads(1)
from torch import nn
from nas.data import load_dataset
from nas.train import load_proxy, train_step
from nas.train.loop import _model, _runtime, make_optimizer
from nas.train.pipeline import prepare_data, train_batch
from nas.variants import resolve_arch
arch, so = sys.argv[1], sys.argv[2]
if so != "-":
    sys.path.insert(0, sys.argv[3])
    from fused_bn_act import fused_module
    from pathlib import Path
    from nas.blocks.common import ConvBNAct
    ConvBNAct.forward = fused_module(Path(so))[1]
data = load_dataset(None); p = load_proxy("confirm"); rt = _runtime(None, None, 1)
with rt.applied():
    prep = prepare_data(data, p, rt.torch_device, final=True)
    model = _model(resolve_arch(arch), data, p, rt)
    opt = make_optimizer(model, p); crit = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    gen = torch.Generator().manual_seed(1); model.train()
    st = []
    for i in range(40):
        xb, yb = train_batch(prep, torch.arange(i * 16, i * 16 + 16), p, gen)
        t = time.perf_counter(); train_step(model, xb, yb, opt, crit, runtime=rt, lr=1e-3); st.append(time.perf_counter() - t)
st = sorted(st[5:])
print(1000 * st[len(st) // 2])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mobilevit_xs", "mobile_former_151m"])
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    from nas.preload import env_for_jobs

    with tempfile.TemporaryDirectory() as tmp:
        so = build(Path(tmp))
        print(f"load before: {open('/proc/loadavg').read().split()[:3]}\n(1) fused against eager, relative gaps:")
        check(so)
        print("(2) the op alone, 1 thread:")
        micro(so)
        print("(3) a training step, median ms (fresh process each):")
        env = {**env_for_jobs(), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        for arch in a.archs:
            for rnd in range(a.rounds):
                for name, arg in (("eager", "-"), ("fused", str(so))):
                    out = subprocess.run([sys.executable, "-c", STEP, arch, arg, str(Path(__file__).parent)], env=env,
                                         cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()[-1]
                    print(f"  {arch:<20} round {rnd + 1} {name}: {float(out):.1f} ms", flush=True)
        print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
