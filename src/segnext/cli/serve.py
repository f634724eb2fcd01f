"""`segnext serve --checkpoint C`: the model over HTTP (`segnext.serve`), with a page to try it."""

from __future__ import annotations

import sys

from .arguments import (
    add_amp,
    add_backend,
    add_nmf_seed,
    add_test_settings,
    amp_setting,
    backend_setting,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
    test_settings,
    with_examples,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP: POST an image, get labels, an overlay or the classes",
        description="Serve a SegNeXt checkpoint (or an ONNX model) over HTTP, loaded once, tested with its saved "
                    "settings (or those given here): GET / (a page to try it), GET /health, POST /predict with the "
                    "image (multipart field 'image', the body as image/*, or JSON {\"image\": base64}) -> the label "
                    "map PNG (as `segnext predict` writes it), ?output=overlay -> the colour overlay PNG, "
                    "?output=json -> the classes and their pixel fractions. Needs pip install 'segnext[serve]'.",
        **with_examples("segnext serve -c segnext-t-ade/",
                        "segnext serve --onnx segnext_t.int8.onnx --port 8080",
                        "curl -F image=@photo.jpg 'http://127.0.0.1:8000/predict?output=json'"))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", "-c", help="any checkpoint create_model reads (model folder, official .pth)")
    source.add_argument("--onnx", help="an ONNX model written by `segnext export` (float32 or --int8)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for "
                                                            "every interface)")
    parser.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    parser.add_argument("--batch-size", type=positive_int, default=4, metavar="N",
                        help="images of one size per forward pass when requests arrive together (default 4)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=20.0,
                        help="largest upload accepted (default 20)")
    parser.add_argument("--max-pixels", type=positive_float, default=25e6,
                        help="largest image accepted, in pixels, checked before decoding (default 25e6)")
    parser.add_argument("--max-inflight", type=positive_int, metavar="N",
                        help="requests holding an image at a time; the others wait (default 2 x batch size)")
    parser.add_argument("--cache-mb", type=non_negative_float, default=64.0,
                        help="label maps of recent uploads kept by their SHA-256, so that the same image asked for "
                             "again (the page asks twice) is not segmented again (default 64; 0: none)")
    parser.add_argument("--max-connections", type=positive_int, default=64,
                        help="open connections beyond which the server answers 503 at once (default 64)")
    parser.add_argument("--cors-origin", action="append", type=web_origin, metavar="ORIGIN",
                        help="a web page's origin (https://app.example.com; repeatable; * for any) whose scripts may "
                             "call the server from a browser (CORS); default none: only the server's own page")
    parser.add_argument("--api-key-file", metavar="FILE",
                        help="answer /predict and /metrics only for requests with 'Authorization: Bearer KEY', KEY "
                             "one of FILE's lines (several for rotating keys; at least 16 characters each, e.g. "
                             "python -c 'import secrets; print(secrets.token_urlsafe(32))'); the page asks for it. "
                             "A file, not an option's value, which other users of the machine could read")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, ...")
    parser.add_argument("--threads", type=positive_int, help="torch / onnxruntime CPU threads")
    add_backend(parser)
    add_amp(parser, "run the model")
    add_nmf_seed(parser, "of the model")
    add_test_settings(parser)
    parser.set_defaults(func=run)


def web_origin(text: str) -> str:
    """An origin as browsers send it (scheme://host[:port], nothing after), or *: "https://x.org/" would
    never match a request's Origin, and every call from that page would fail in the browser."""
    import argparse
    import re

    if text == "*" or re.fullmatch(r"https?://[^/\s?#]+", text):
        return text
    bare = re.match(r"https?://[^/\s?#]+", text)
    hint = f"{bare.group(0)}" if bare else f"https://{text.strip('/')}"
    raise argparse.ArgumentTypeError(f"{text!r} is not an origin: give the scheme and host (and port) a browser "
                                     f"sends, without a path or a final /, e.g. {hint}; or * for any")


MIN_KEY_LENGTH = 16


def read_api_keys(path) -> list:
    """The keys of --api-key-file: its non-empty lines, each long enough not to be guessed."""
    from pathlib import Path

    try:
        keys = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--api-key-file {path}: cannot read it ({error})") from None
    if not keys:
        raise ValueError(f"--api-key-file {path} holds no key; write one per line, e.g. "
                         f"python -c 'import secrets; print(secrets.token_urlsafe(32))' > {path}")
    short = [number for number, key in enumerate(keys, start=1) if len(key) < MIN_KEY_LENGTH or " " in key]
    if short:
        raise ValueError(f"--api-key-file {path}: key {short[0]} is shorter than {MIN_KEY_LENGTH} characters or "
                         f"holds a space; make one with python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return keys


def run(args) -> int:
    import torch

    from ..inference import Segmenter
    from ..runtime import use_device
    from ..utils import require, resolve_device

    uvicorn = require("uvicorn", "serve", "segnext serve")
    from ..serve import create_app

    api_keys = read_api_keys(args.api_key_file) if args.api_key_file else []  # before the model loads
    device = resolve_device(args.device)
    use_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.onnx:
        require("onnxruntime", "onnx", "--onnx")
        segmenter = Segmenter.from_onnx(args.onnx, threads=args.threads)
        name = args.onnx
    else:
        segmenter = Segmenter.from_checkpoint(args.checkpoint, device=device, backend=backend_setting(args),
                                              nmf_seed=args.nmf_seed, amp=amp_setting(args))
        name = args.checkpoint
    segmenter.test_config = test_settings(args, segmenter.test_config)
    app = create_app(segmenter, name=str(name), cors_origins=args.cors_origin or (), api_keys=api_keys,
                     batch_size=args.batch_size,
                     max_upload_mb=args.max_upload_mb,
                     max_pixels=int(args.max_pixels), max_inflight=args.max_inflight, cache_mb=args.cache_mb)
    keys = f", {len(api_keys)} key(s) from {args.api_key_file}" if api_keys else ""
    print(f"segnext serve: {name} ({segmenter.num_classes} classes, {segmenter.test_config.describe()}, "
          f"{segmenter.device}{keys}) on "
          f"http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, limit_concurrency=args.max_connections, log_level="warning")
    return 0
