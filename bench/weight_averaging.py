"""Weight averaging as a search score (issue 17, point 4): does the uniform average of the weights over the
last epoch's steps (SWA-style, BatchNorm statistics recomputed on the training images) rank the long
reference better than the final weights of the same run?

    .venv/bin/python bench/weight_averaging.py [--workers 2]

Each of the long reference's 33 architectures is trained once under the shipped search protocol (seed 0,
64 steps, the trainer's own `train_epoch`/`train_step`; the step is wrapped to fold the weights into a
running average during the last epoch), then scored on the search validation split twice: the final weights
(what the search reads) and the averaged ones. One JSON line per architecture goes to
bench/weight_averaging.jsonl (resumable); the summary gives each score's Kendall tau against the long
reference with a bootstrap 95% interval, and the paired difference averaged - final.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
HERE = Path(__file__).resolve().parent


def run_one(a: dict) -> dict:
    import torch
    from protocol_fidelity import _arch
    from torch import nn

    import nas.train.loop as L
    from nas.data import load_dataset
    from nas.runtime import Runtime
    from nas.train import load_proxy
    from nas.train.pipeline import normalize, prepare_data

    torch.set_num_threads(1)
    proxy = load_proxy()
    data = load_dataset(None)
    prep = prepare_data(data, proxy)
    rt = Runtime(threads=1)
    t = time.perf_counter()
    model = L._model(_arch(a), data, proxy, rt)
    opt = L.make_optimizer(model, proxy)
    crit = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
    gen = torch.Generator().manual_seed(proxy.seed + 1)
    avg = torch.optim.swa_utils.AveragedModel(model)
    original = L.train_step
    state = {"averaging": False}

    def step(*args, **kw):
        loss = original(*args, **kw)
        if state["averaging"]:
            avg.update_parameters(model)
        return loss

    L.train_step = step
    try:
        for epoch in range(1, proxy.epochs + 1):
            state["averaging"] = epoch == proxy.epochs
            L.train_epoch(model, prep, proxy, opt, crit, gen, epoch=epoch, runtime=rt)
    finally:
        L.train_step = original
    bs, _ = L.epoch_shape(prep, proxy)
    final = L.evaluate(model, prep.val_x, prep.val_y, prep, batch_size=2 * bs, runtime=rt)
    batches = [normalize(prep.train_x[i:i + 2 * bs], prep) for i in range(0, len(prep.train_x), 2 * bs)]
    torch.optim.swa_utils.update_bn(batches, avg)
    averaged = L.evaluate(avg.module, prep.val_x, prep.val_y, prep, batch_size=2 * bs, runtime=rt)
    return {"arch": a["name"], "arch_id": a["arch_id"], "protocol": proxy.hash, "seed": 0, "final_val": final,
            "averaged_val": averaged, "wall_s": time.perf_counter() - t, "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=HERE / "weight_averaging.jsonl")
    ap.add_argument("--reference", type=Path, default=HERE / "long_reference.jsonl")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from long_reference import reference_archs

    from nas import stats as S

    archs, ref = reference_archs(args.reference)
    done = {json.loads(x)["arch_id"] for x in args.log.read_text().splitlines() if x.strip()} \
        if args.log.is_file() else set()
    todo = [a for a in archs if a["arch_id"] not in done]
    print(f"{len(archs)} architectures, {len(todo)} to train", flush=True)
    with ProcessPoolExecutor(args.workers) as ex:
        for f in as_completed([ex.submit(run_one, a) for a in todo]):
            row = f.result()
            with args.log.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"  {row['arch']:<22} final {row['final_val']:.1f} averaged {row['averaged_val']:.1f} "
                  f"{row['wall_s']:.0f}s load {row['load']:.1f}", flush=True)
    rows = {json.loads(x)["arch_id"]: json.loads(x) for x in args.log.read_text().splitlines() if x.strip()}
    ids = [a["arch_id"] for a in archs if a["arch_id"] in rows]
    refv = [ref[i] for i in ids]
    fin = [rows[i]["final_val"] for i in ids]
    av = [rows[i]["averaged_val"] for i in ids]
    for name, v in (("final weights (the search's score)", fin), ("last-epoch weight average", av)):
        ra = S.rank_agreement(v, refv)
        print(f"{name}: tau {ra.tau:+.2f} [{ra.lo:+.2f}, {ra.hi:+.2f}] (n = {ra.n})")
    d = S.paired_tau_diff(av, fin, refv)
    print(f"averaged - final: tau difference {d.tau:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}] (paired bootstrap, n = {d.n})")


if __name__ == "__main__":
    main()
