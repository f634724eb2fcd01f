"""`segnext flops NAME --shape H W`: parameters and multiply-accumulates, as the paper counts them."""

from __future__ import annotations

import argparse
import json

from .arguments import positive_int, with_examples, yaml_value


def model_option(text: str):
    """An argparse type: KEY=VALUE, a field of SegNeXtConfig and its value read as YAML."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE (e.g. attention_gating=false), got {text!r}")
    if key.strip() in ("variant", "num_classes"):
        raise argparse.ArgumentTypeError(f"{key.strip()} is not an option here: give the variant as NAME and the "
                                         f"classes with --num-classes")
    return key.strip(), yaml_value(value)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "flops", help="parameters and MACs (the paper's 'FLOPs') of a variant at an input size",
        description="Count parameters and multiply-accumulates of the whole forward (final resize included) "
                    "with torchprofile's rules. The paper's 'FLOPs' are these MACs.",
        **with_examples("segnext flops segnext_t segnext_l --shape 512 512",
                        "segnext flops --shape 1024 2048 --num-classes 19 --json",
                        "segnext flops segnext_t --option attention_gating=false --option 'head_in_stages=[3]'"))
    parser.add_argument("names", nargs="*", metavar="NAME", help="variants (default: all four)")
    parser.add_argument("--shape", type=positive_int, nargs=2, default=(512, 512), metavar=("H", "W"),
                        help="input height and width (default 512 512)")
    parser.add_argument("--num-classes", type=positive_int, default=150,
                        help="classes of the head (default 150, ADE20K)")
    parser.add_argument("--option", type=model_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a field of segnext.SegNeXtConfig, as model.options of a config, e.g. the paper's "
                             "ablations: strip_kernel_sizes=[], attention_channel_mixing=false, "
                             "attention_gating=false, attention=lka, 'head_in_stages=[0,1,2,3]', decoder=mlp "
                             "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..flops import model_complexity
    from ..models import list_models

    names = args.names or list_models()
    height, width = args.shape
    options = dict(args.option)
    results = [model_complexity(name, height, width, num_classes=args.num_classes, **options) for name in names]
    if args.json:
        print(json.dumps([{**r.to_dict(), **({"options": options} if options else {})} for r in results], indent=2))
        return 0
    print(f"{'model':<10} {'input':>11} {'params':>12} {'GMACs':>9} {'GFLOPs':>9}   conv / matmul / other GMACs")
    for r in results:
        kinds = r.macs_by_kind
        conv, matmul = kinds.get("conv", 0) / 1e9, kinds.get("matmul", 0) / 1e9
        other = r.gmacs - conv - matmul
        print(f"{r.name:<10} {f'{height}x{width}':>11} {r.params:>12,} {r.gmacs:>9.2f} {2 * r.gmacs:>9.2f}   "
              f"{conv:.2f} / {matmul:.2f} / {other:.2f}")
    changed = "".join(f"; {key}={json.dumps(value)}" for key, value in options.items())
    print(f"({args.num_classes} classes{changed}; MACs counted as torchprofile counts them, as the paper reports "
          f"'FLOPs')")
    return 0
