"""Model folders on the Hugging Face Hub, for `SegNeXt.from_pretrained` and `SegNeXt.push_to_hub`.

A repository on the Hub holds exactly the model folder that `segnext.save_model` writes:
`config.json`, `model.safetensors` and the `README.md` model card. Downloads go through
huggingface_hub's cache, so `HF_HUB_OFFLINE=1`, `HF_HUB_CACHE`, tokens and mirrors work as they
do for every Hub library. huggingface_hub is optional: `pip install 'segnext[hub]'`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Optional

from .card import CARD_FILE
from .weights import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, save_model

FOLDER_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ValueError("the Hugging Face Hub needs huggingface_hub: pip install 'segnext[hub]'") from None
    return huggingface_hub


def resolve_model_folder(folder_or_hub_id, revision: Optional[str] = None, cache_dir=None) -> Path:
    """A local path as it is, or the local copy of the Hub repository `owner/name` (downloaded
    into huggingface_hub's cache unless it is there already)."""
    path = Path(folder_or_hub_id).expanduser()
    if path.exists():
        return path
    text = str(folder_or_hub_id)
    if not _REPO_ID.match(text):
        raise FileNotFoundError(f"{text} is neither a local model folder nor a Hugging Face Hub id (owner/name).")
    hub = _huggingface_hub()
    try:
        folder = hub.snapshot_download(text, revision=revision, allow_patterns=list(FOLDER_FILES), cache_dir=cache_dir)
    except Exception as error:  # huggingface_hub's errors differ by version; all are reported the same way
        raise CheckpointError(f"Cannot get {text} from the Hugging Face Hub ({type(error).__name__}: "
                              f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}). Check the id "
                              f"and the network; with HF_HUB_OFFLINE=1 only models already in the cache "
                              "(HF_HUB_CACHE) are found.") from None
    return Path(folder)


def push_model_folder(model, repo_id: str, *, private: Optional[bool] = None, token: Optional[str] = None,
                      commit_message: str = "Upload SegNeXt model", source: Optional[str] = None,
                      metrics: Optional[dict] = None) -> str:
    """Save `model` as a model folder and upload it to the Hub repository `repo_id` (created if
    needed); returns the commit's URL."""
    hub = _huggingface_hub()
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        save_model(model, folder, source=source, metrics=metrics)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))
