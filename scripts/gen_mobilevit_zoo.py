"""Write the 16 published MobileViT v1/v2/v3 variants as ArchConfig YAML files in nas/zoo/.

The widths come from the families' rules (v1/v3-v1 tables; the v2 width rule with `make_divisible` for
v2 and v3-v2), not from typed-in numbers, so a change of rule shows up as a diff of the zoo files.

    python scripts/gen_mobilevit_zoo.py            # (re)write nas/zoo/mobilevit*.yaml
    python scripts/gen_mobilevit_zoo.py --check    # exit 1 if a zoo file differs from the rules
    python scripts/gen_mobilevit_zoo.py --reference /work/shared/reference/published_variants.yaml
                                                   # also cross-check widths against the reference arch blocks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.config import ArchConfig, HeadCfg, IRCfg, MobileViTCfg, StageCfg, StemCfg, make_divisible

ZOO = Path(__file__).resolve().parents[1] / "nas" / "zoo"

# v1 / v3-v1 tables: stem, layer1, layer2 outs, expansion, (out, dim, depth) for layer3-5, final conv.
# FFN dim is 2*d, 4 heads, patch 2 (MobileViT paper Table 4; MobileViTv3 configs *_v3).
_V1_TABLE: dict[str, dict] = {
    "mobilevit_xxs": dict(l1=16, l2=24, expand=2, mvit=((48, 64, 2), (64, 80, 4), (80, 96, 3)), final=320),
    "mobilevit_xs": dict(l1=32, l2=48, expand=4, mvit=((64, 96, 2), (80, 120, 4), (96, 144, 3)), final=384),
    "mobilevit_s": dict(l1=32, l2=64, expand=4, mvit=((96, 144, 2), (128, 192, 4), (160, 240, 3)), final=640),
    "mobilevitv3_xxs": dict(l1=16, l2=24, expand=2, mvit=((64, 64, 2), (80, 80, 4), (128, 96, 3)), final=512),
    "mobilevitv3_xs": dict(l1=32, l2=48, expand=4, mvit=((96, 96, 2), (160, 120, 4), (160, 144, 3)), final=640),
    "mobilevitv3_s": dict(l1=32, l2=64, expand=4, mvit=((128, 144, 2), (256, 192, 4), (320, 240, 3)), final=960),
}
_V2_WIDTHS = {"050": 0.5, "075": 0.75, "100": 1.0, "125": 1.25, "150": 1.5, "175": 1.75, "200": 2.0}


def v1_arch(name: str, *, v3: bool) -> ArchConfig:
    """MobileViT v1 (fusion v1, full local conv) or MobileViTv3 v1-based (fusion v3, depthwise local conv)."""
    t = _V1_TABLE[name]
    e = float(t["expand"])
    stages = [
        StageCfg("layer1", (IRCfg(t["l1"], stride=1, expand=e),)),
        StageCfg("layer2", tuple(IRCfg(t["l2"], stride=s, expand=e) for s in (2, 1, 1))),
    ]
    for i, (out, dim, depth) in enumerate(t["mvit"]):
        blk = MobileViTCfg(dim=dim, ffn_dim=2 * dim, depth=depth, heads=4, patch=2, attention="mhsa",
                           fusion="v3" if v3 else "v1", local="dw" if v3 else "full", proj_act=True)
        stages.append(StageCfg(f"layer{i + 3}", (IRCfg(out, stride=2, expand=e), blk)))
    assert t["final"] == min(4 * t["mvit"][-1][0], 960)
    return ArchConfig(name=name, resolution=256, stem=StemCfg(16), stages=tuple(stages),
                      head=HeadCfg(conv=t["final"], conv_act="swish", dropout=0.1), num_classes=1000,
                      family="MobileViT-v3" if v3 else "MobileViT-v1")


def v2_arch(name: str, alpha: float, *, v3: bool) -> ArchConfig:
    """MobileViTv2 at width `alpha` (fusion none), or MobileViTv3 v2-based (fusion v3_merged): the v2 width rule."""
    stem = make_divisible(min(max(32 * alpha, 16), 64), 8, 16)
    l1 = make_divisible(64 * alpha, 16)
    l2 = make_divisible(128 * alpha, 8)
    stages = [
        StageCfg("layer1", (IRCfg(l1, stride=1, expand=2.0),)),
        StageCfg("layer2", (IRCfg(l2, stride=2, expand=2.0), IRCfg(l2, stride=1, expand=2.0))),
    ]
    for i, (c, dim, depth) in enumerate(((256, 128, 2), (384, 192, 4), (512, 256, 3))):
        d = make_divisible(dim * alpha, 8)
        blk = MobileViTCfg(dim=d, ffn_dim=(2 * d) // 16 * 16, depth=depth, patch=2, attention="separable",
                           fusion="v3_merged" if v3 else "none", local="dw", proj_act=False)
        stages.append(StageCfg(f"layer{i + 3}", (IRCfg(make_divisible(c * alpha, 8), stride=2, expand=2.0), blk)))
    return ArchConfig(name=name, resolution=256, stem=StemCfg(stem), stages=tuple(stages),
                      head=HeadCfg(conv=None, dropout=0.0), num_classes=1000,
                      family="MobileViT-v3" if v3 else "MobileViT-v2")


def all_archs() -> dict[str, ArchConfig]:
    """The 16 published MobileViT variants by code name."""
    out = {n: v1_arch(n, v3=False) for n in ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s")}
    out.update({f"mobilevitv2_{k}": v2_arch(f"mobilevitv2_{k}", a, v3=False) for k, a in _V2_WIDTHS.items()})
    out.update({n: v1_arch(n, v3=True) for n in ("mobilevitv3_xxs", "mobilevitv3_xs", "mobilevitv3_s")})
    out.update({f"mobilevitv3_{k}": v2_arch(f"mobilevitv3_{k}", _V2_WIDTHS[k], v3=True) for k in ("050", "075", "100")})
    return out


def check_reference(archs: dict[str, ArchConfig], path: Path) -> list[str]:
    """Compare stem/stage widths, dims, FFN dims and depths with the reference file's `arch:` blocks."""
    import yaml

    ref = {v["code_name"]: v for v in yaml.safe_load(path.read_text())["variants"]}
    problems = []
    for name, cfg in archs.items():
        a = ref[name]["arch"]
        if a["stem"]["out"] != cfg.stem.out:
            problems.append(f"{name}: stem {cfg.stem.out} != {a['stem']['out']}")
        for st, rs in zip(cfg.stages, a["stages"]):
            if st.blocks[0].out != rs["out"]:
                problems.append(f"{name} {st.name}: out {st.blocks[0].out} != {rs['out']}")
            mv = st.blocks[-1]
            if isinstance(mv, MobileViTCfg):
                dim = rs.get("transformer_dim", rs.get("attn_dim"))
                depth = rs.get("transformer_layers", rs.get("attn_blocks"))
                if (mv.dim, mv.ffn_dim, mv.depth) != (dim, rs["ffn_dim"], depth):
                    problems.append(f"{name} {st.name}: {(mv.dim, mv.ffn_dim, mv.depth)} != {(dim, rs['ffn_dim'], depth)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare the zoo files with the rules")
    ap.add_argument("--reference", type=Path, help="published_variants.yaml to cross-check widths against")
    args = ap.parse_args(argv)
    archs = all_archs()
    if args.reference:
        problems = check_reference(archs, args.reference)
        for p in problems:
            print("reference mismatch:", p, file=sys.stderr)
        if problems:
            return 1
    bad = 0
    for name, cfg in archs.items():
        path = ZOO / f"{name}.yaml"
        if args.check:
            if not path.is_file() or ArchConfig.from_yaml(path) != cfg:
                print(f"differs: {path}", file=sys.stderr)
                bad += 1
        else:
            cfg.to_yaml(path)
            print(f"wrote {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
