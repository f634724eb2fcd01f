"""`segnext push MODEL owner/name`: a model on the Hugging Face Hub, loadable as `hf://owner/name`."""

from __future__ import annotations

import sys

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a model to the Hugging Face Hub (then --checkpoint hf://owner/name anywhere)",
        description="Upload MODEL to the Hugging Face Hub repository REPO (owner/name; created if needed, private "
                    "with --private). A model folder (a run's final_model, `segnext convert`'s output) goes up as it "
                    "is, its model card and training record kept; any other checkpoint create_model reads (an "
                    "official .pth, a training checkpoint) is made into one first. Then "
                    "`--checkpoint hf://owner/name` in every command, `model.checkpoint: hf://owner/name` in a "
                    "config and `segnext.create_model(checkpoint='hf://owner/name')` load it. The token is "
                    "huggingface_hub's (`huggingface-cli login`, or HF_TOKEN). Needs pip install 'segnext[hub]'.",
        **with_examples("segnext push runs/mine/final_model someone/segnext-t-cracks --private",
                        "segnext predict -c hf://someone/segnext-t-cracks photos/"))
    parser.add_argument("model", metavar="MODEL", help="a model folder, or any checkpoint create_model reads")
    parser.add_argument("repo", metavar="REPO", help="the Hub repository, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repository private (if it is new)")
    parser.add_argument("--message", default="Upload SegNeXt model", help="the commit message")
    parser.set_defaults(func=run)


def run(args) -> int:
    import tempfile
    from pathlib import Path

    from ..models import create_model, recorded_training_data, save_model
    from ..models.hub import HUB_PREFIX, check_repo_id, upload_model_folder
    from ..models.weights import CONFIG_FILE, WEIGHTS_FILE

    check_repo_id(args.repo)
    folder = Path(args.model)
    with tempfile.TemporaryDirectory() as converted:
        if not ((folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()):
            model = create_model(checkpoint=args.model)  # a wrong file is named here, before any upload
            save_model(model, converted, source=f"Uploaded by `segnext push` from {Path(args.model).name}.",
                       training_data=recorded_training_data(args.model))
            folder = Path(converted)
        url = upload_model_folder(folder, args.repo, private=args.private or None, commit_message=args.message)
    print(f"pushed {args.model} to {args.repo}: {url}", file=sys.stderr)
    print(f"load it with --checkpoint {HUB_PREFIX}{args.repo} (or create_model(checkpoint='{HUB_PREFIX}{args.repo}'))",
          file=sys.stderr)
    return 0
