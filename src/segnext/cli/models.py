"""`segnext models`: the variants with their sizes; `--pretrained`: the published weights."""

from __future__ import annotations

import json

from .arguments import positive_int, with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list the SegNeXt variants with parameter counts",
        description="The four SegNeXt variants (T, S, B, L) of the paper: total, encoder and decoder parameters "
                    "for a head of --num-classes classes, embed dims and depths.",
        **with_examples("segnext models", "segnext models --num-classes 19 --json"))
    parser.add_argument("--num-classes", type=positive_int, default=150,
                        help="classes of the head (default 150, ADE20K)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--pretrained", action="store_true",
                        help="list the published weights (create_model(NAME, pretrained=TAG)) and whether they are "
                             "in the local cache")
    parser.set_defaults(func=run)


def run_pretrained(args) -> int:
    from ..models.download import cache_dir, url_of
    from ..models.pretrained import PRETRAINED

    rows = [dict(name=w.name, variant=w.variant, tag=w.tag, num_classes=w.num_classes, encoder_only=w.encoder_only,
                 miou=w.miou, miou_ms_flip=w.miou_ms_flip, url=None if w.bundled else url_of(w),
                 sha256_prefix=w.sha256_prefix,
                 cached=w.bundled or (cache_dir() / w.file_name).is_file()) for w in PRETRAINED.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<20} {'weights':<22} {'mIoU':>6} {'ms+flip':>8}  {'cached':<7} file")
    for r in rows:
        what = "encoder (ImageNet-1K)" if r["encoder_only"] else f"model, {r['num_classes']} classes"
        miou = f"{r['miou']:.2f}" if r["miou"] is not None else "-"
        ms = f"{r['miou_ms_flip']:.2f}" if r["miou_ms_flip"] is not None else "-"
        print(f"{r['name']:<20} {what:<22} {miou:>6} {ms:>8}  {'yes' if r['cached'] else 'no':<7} "
              f"{r['url'].rsplit('/', 1)[-1] if r['url'] else 'in the package'}")
    unscored = any(r["miou"] is None and not r["encoder_only"] for r in rows)  # trained on val too
    print("(val mIoU: ADE20K's as MMSegmentation reports it, others as their model card says"
          + (" ('-': trained on val too, its card has a score on held-out data)" if unscored else "")
          + f"; cache: {cache_dir()}; load with segnext.create_model('segnext_t', pretrained='ade20k'))")
    return 0


def run(args) -> int:
    from ..models import VARIANTS, create_model

    if args.pretrained:
        return run_pretrained(args)
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
