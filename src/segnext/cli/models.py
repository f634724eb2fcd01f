"""`segnext models`: the variants with their sizes."""

from __future__ import annotations

import json

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list the SegNeXt variants with parameter counts",
        description="The four SegNeXt variants (T, S, B, L) of the paper: total, encoder and decoder parameters "
                    "for a head of --num-classes classes, embed dims and depths.",
        **with_examples("segnext models", "segnext models --num-classes 19 --json"))
    parser.add_argument("--num-classes", type=int, default=150, help="classes of the head (default 150, ADE20K)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..models import VARIANTS, create_model

    rows = []
    for name in VARIANTS:
        model = create_model(name, args.num_classes)
        total = sum(p.numel() for p in model.parameters())
        backbone = sum(p.numel() for p in model.backbone.parameters())
        c = model.config
        rows.append(dict(name=name, params=total, backbone_params=backbone, head_params=total - backbone,
                         embed_dims=list(c.embed_dims), depths=list(c.depths), ham_channels=c.ham_channels,
                         nmf_rank=c.nmf_rank))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<10} {'params':>12} {'backbone':>12} {'head':>10}  embed dims          depths")
    for r in rows:
        print(f"{r['name']:<10} {r['params']:>12,} {r['backbone_params']:>12,} {r['head_params']:>10,}  "
              f"{str(tuple(r['embed_dims'])):<19} {tuple(r['depths'])}")
    print(f"(head with {args.num_classes} classes)")
    return 0
