"""Evaluation as a job pays it: the validation split (512 images) and the test subset (2,000) of the shipped
confirm protocol, scored once each in a fresh process after 20 training steps, under three settings:

- ``plain``: eval-mode modules at batch 32 (2x the training batch), as before 2026-12-05;
- ``fold32``: the conv-BatchNorm pairs folded (`nas.blocks.common.batchnorm_folded`), batch 32;
- ``fold64``: folded, batch 64;
- ``now``: what `nas.train.evaluate_metrics` does: folded, from batch `eval_batch_size(16)` = 32 grown on the
  CPU while the largest activation map of the batch fits 16 MiB (`nas.train.loop.cpu_eval_batch`), each
  folded conv with its activation run as one oneDNN convolution (`nas.blocks.common.FoldedConvAct`);
- ``unfused``: ``now`` with the convolution and its activation run apart, as before 2026-12-06;
- ``fusedkxk``: ``now`` with only the kxk convolutions (k > 1) run with their activation in oneDNN, the 1x1 ones
  as `Conv2d` runs them (a matrix product where `pointwise_as_linear`), then the activation.

    .venv/bin/python bench/eval_speed.py [--archs mobile_former_151m mobilevit_xs] [--rounds 2] \
        [--modes plain fold32 fold64 unfused now]

Each (architecture, setting) runs in its own process, settings alternating round by round, 1 thread, with the
MKL shim where the `nas` command would use it (nas.blas). A fresh process counts the oneDNN primitives that a
new batch size or a folded convolution (it has a bias) creates, as a job does. Prints seconds for the two
evaluations and the top-1 and loss of the test subset, which must agree across settings to float rounding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = """
import json, sys, time, torch
torch.set_num_threads(1)
from torch import nn
from nas.data import load_dataset
from nas.train import load_proxy, train_step
from nas.blocks.common import batchnorm_folded
from nas.train.loop import _model, _runtime, _metrics, cpu_eval_batch, eval_batch_size, evaluate_metrics, make_optimizer
from nas.train.pipeline import prepare_data, train_batch
from nas.variants import resolve_arch
arch, mode = sys.argv[1], sys.argv[2]
if mode == "unfused":
    import nas.blocks.common
    nas.blocks.common._fusable = lambda conv, act: None
if mode == "fusedkxk":
    import nas.blocks.common
    _fusable = nas.blocks.common._fusable
    nas.blocks.common._fusable = lambda conv, act: None if conv.kernel_size == (1, 1) else _fusable(conv, act)
data = load_dataset(None); p = load_proxy("confirm"); rt = _runtime(None, None, 1)
with rt.applied():
    prep = prepare_data(data, p, rt.torch_device, final=True)
    model = _model(resolve_arch(arch), data, p, rt)
    opt = make_optimizer(model, p); crit = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    gen = torch.Generator().manual_seed(1); model.train()
    for i in range(20):
        xb, yb = train_batch(prep, torch.arange(i * 16, i * 16 + 16), p, gen)
        train_step(model, xb, yb, opt, crit, runtime=rt, lr=1e-3)
    out = {}
    for name, x, y in (("val", prep.val_x, prep.val_y), ("test", prep.test_x, prep.test_y)):
        t = time.perf_counter()
        model.eval()
        if mode == "plain":
            r = _metrics(model, x, y, prep, batch_size=32, runtime=rt, grow=False)
        elif mode in ("fold32", "fold64"):
            with batchnorm_folded(model):
                r = _metrics(model, x, y, prep, batch_size=int(mode[4:]), runtime=rt, grow=False)
        else:
            r = evaluate_metrics(model, x, y, prep, batch_size=eval_batch_size(16), runtime=rt)
        out[name + "_s"] = time.perf_counter() - t
    with batchnorm_folded(model), torch.inference_mode():
        from nas.train.pipeline import normalize
        out["now_batch"] = cpu_eval_batch(model, rt.inputs(normalize(prep.val_x[:1], prep)), eval_batch_size(16))
    out["test_top1"], out["test_loss"] = r
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mobile_former_151m", "mobilevit_xs"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["plain", "fold32", "fold64", "unfused", "now"],
                    choices=["plain", "fold32", "fold64", "unfused", "fusedkxk", "now"])
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from nas.preload import env_for_jobs

    env = {**env_for_jobs(), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    print(f"load before: {open('/proc/loadavg').read().split()[:3]}")
    for arch in a.archs:
        for rnd in range(a.rounds):
            for mode in a.modes:
                r = json.loads(subprocess.run([sys.executable, "-c", JOB, arch, mode], env=env, cwd=ROOT, check=True,
                                              capture_output=True, text=True).stdout.strip().splitlines()[-1])
                print(f"{arch:<20} round {rnd + 1} {mode:<7} val {r['val_s']:.2f} s  test {r['test_s']:.2f} s  "
                      f"both {r['val_s'] + r['test_s']:.2f} s  test top-1 {r['test_top1']} loss {r['test_loss']:.6f}"
                      + (f"  (batch {r['now_batch']})" if mode in ("now", "unfused") else ""),
                      flush=True)
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
