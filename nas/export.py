"""Export a discovered architecture: its config YAML (which `nas train`, `nas flops` and `nas.create_model`
take) and an ONNX graph at its target resolution. A trial is rebuilt from the run folder alone: no Ray, no
Optuna study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas import results as R
from nas.config import ArchConfig
from nas.errors import ConfigError, RunError


def trial_row(run_dir: str | Path, trial: str) -> dict[str, Any]:
    """The search-stage row of `trial` in a run folder (a RunError lists some trials when there is none)."""
    d = Path(run_dir)
    df = R.search_stage(R.load_run(d).trials)
    hit = df[df["trial"].astype(str) == str(trial)]
    if not len(hit):
        some = ", ".join(df["trial"].astype(str).tolist()[:8])
        raise RunError(f"no trial {trial!r} in {d}", f"pick one of: {some}{' ...' if len(df) > 8 else ''}")
    return hit.iloc[0].to_dict()


def trial_arch(run_dir: str | Path, trial: str) -> ArchConfig:
    """The architecture of one trial of a run, rebuilt from the run folder alone (no Ray, no study)."""
    from nas.config import load_yaml

    row = trial_row(run_dir, trial)
    d = Path(run_dir)
    if row.get("config_path") and (d / str(row["config_path"])).is_file():
        return ArchConfig.from_yaml(d / str(row["config_path"]))
    if row["kind"] == "baseline":
        from nas.variants import get_variant

        return get_variant(str(row["name"]))
    from nas.search.folder import params_from_row
    from nas.space import parse_space, replay

    space = parse_space(load_yaml(d / "space.yaml"), source=str(d / "space.yaml"))
    arch = replay(params_from_row(row, space), space)
    if arch.arch_id != row["arch_id"]:
        raise RunError(f"trial {trial}: its knobs rebuild arch {arch.arch_id}, the row says {row['arch_id']}",
                       "the run's space.yaml was edited; restore it")
    return arch.replace(name=str(trial))


def export_trial(run_dir: str | Path, trial: str, *, out: str | Path | None = None, onnx: bool = True,
                 opset: int = 18, untrained: bool = False) -> dict[str, Path]:
    """Write `<trial>.yaml` (ArchConfig) and `<trial>.onnx` (the network at its target resolution).

    A trial that was never trained (refused by the budget screen, failed, NaN, still running) is refused
    unless `untrained` is set: its architecture has no measured accuracy to stand on."""
    row = trial_row(run_dir, trial)
    if row["status"] not in R.FINISHED_OK and not untrained:
        why = str(row.get("error") or "").strip() or "no result"
        raise RunError(f"trial {trial} of {run_dir} was never trained (status {row['status']}: {why})",
                       "export a trained trial (pareto.csv lists the front), or pass --untrained to export "
                       "its architecture anyway")
    arch = trial_arch(run_dir, trial)
    d = Path(out) if out else Path(run_dir) / "export"
    d.mkdir(parents=True, exist_ok=True)
    paths = {"yaml": d / f"{trial}.yaml"}
    arch.to_yaml(paths["yaml"])
    if onnx:
        paths["onnx"] = export_onnx(arch, d / f"{trial}.onnx", opset=opset)
    return paths


def export_onnx(arch: ArchConfig, path: Path, *, opset: int = 18, model: Any = None, input_size: int | None = None,
                in_chans: int | None = None, num_classes: int | None = None) -> Path:
    """torch.onnx.export at the target resolution with a dynamic batch axis (input "image" [batch, C, R, R],
    output "logits" [batch, classes]; the dynamo exporter, the legacy one if that fails);
    the file is checked with onnx.checker. Opset 18 is the dynamo exporter's own (a lower one makes it run
    a version converter that fails loudly on our graphs); its progress lines and warnings are silenced.
    `model` exports that network (e.g. a subnet with inherited weights, built for `in_chans`/`num_classes`)
    at `input_size` instead of a freshly built one at the target resolution."""
    import logging
    import warnings

    import torch

    from nas.builder import build_model

    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package", "pip install 'hybrid-nas[export]'") from None
    model = (model if model is not None else build_model(arch, num_classes=num_classes, in_chans=in_chans)).eval()
    r = input_size or arch.resolution
    # batch 2, not 1: the exporter specializes a size-1 dim to a constant, and the batch axis is dynamic
    x = torch.randn(2, in_chans or arch.in_chans, r, r)
    errors = []
    for dynamo in (True, False):
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name in ("torch.onnx", "onnxscript"):
                    logging.getLogger(name).setLevel(logging.ERROR)
                torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=dynamo, verbose=False,
                                  input_names=["image"], output_names=["logits"],
                                  dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
            onnx.checker.check_model(str(path))
            return path
        except Exception as e:  # fall back to the legacy exporter
            errors.append(f"{'dynamo' if dynamo else 'legacy'}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    raise RunError(f"ONNX export of {arch.name} failed ({'; '.join(errors)})", "export the YAML only with --no-onnx")
