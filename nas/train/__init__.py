"""Proxy training: the protocol (`protocol`), the input pipeline (`pipeline`) and the trainer (`loop`).

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

Everything that trains, or times training, goes through `train_step` on batches from `train_batch`: the
trainer `train_arch`, the dry-run estimate and the benchmarks (`time_steps`).
"""

from nas.train.loop import (
    NonFiniteLoss,
    Report,
    TrainResult,
    epoch_shape,
    evaluate,
    lr_at,
    make_optimizer,
    time_evaluation,
    time_steps,
    train_arch,
    train_epoch,
    train_step,
)
from nas.train.pipeline import PreparedData, augment, normalize, prepare_data, to_resolution, train_batch
from nas.train.protocol import (
    DEFAULT_PROXY_PATH,
    ProxyConfig,
    load_proxy,
    protocol_path,
    proxy_from_dict,
    shipped_protocols,
)

__all__ = [
    "DEFAULT_PROXY_PATH", "NonFiniteLoss", "PreparedData", "ProxyConfig", "Report", "TrainResult", "augment",
    "epoch_shape", "evaluate", "load_proxy", "lr_at", "make_optimizer", "normalize", "prepare_data",
    "protocol_path", "proxy_from_dict", "shipped_protocols", "time_evaluation", "time_steps", "to_resolution",
    "train_arch", "train_batch", "train_epoch", "train_step",
]
