"""The package's structure, as contracts: layers that point one way (import-linter, configured in
pyproject.toml), no private names across modules, PyTorch's private oneDNN ops in one backend,
a light `import segnext`, and no process-wide state changed by library code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "src" / "segnext"


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter",
                        reason="import-linter is not installed (pip install -e '.[test]', Python 3.10 or newer)")
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("segnext")):
                offenders += [f"{path.relative_to(PACKAGE)}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert offenders == []


def test_private_onednn_ops_only_in_the_cpu_backend():
    users = [path.relative_to(PACKAGE).as_posix() for path in _sources() if "torch.ops.mkldnn" in path.read_text()]
    assert users == ["inference/optimize.py"]


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_segnext_and_the_command_line_parser_do_not_load_torch():
    """`segnext --help` must answer at once: torch is imported only when a command runs."""
    out = _run("import sys, segnext, segnext.cli.main as m; m.build_parser(); print('torch' in sys.modules)")
    assert out == "False"


def test_library_code_changes_no_process_wide_state(checkpoint_path, tmp_path):
    """Loading a model, predicting and writing a report leave Pillow's limit, torch's threads, the
    signal handlers, the global RNGs and matplotlib's backend as they were; the command line's
    runtime module is what changes them."""
    code = f"""
import random, signal, numpy as np, torch, PIL.Image, matplotlib
import segnext
from segnext.train.report import save_report_data, write_report
def snapshot():
    return (PIL.Image.MAX_IMAGE_PIXELS, torch.get_num_threads(), signal.getsignal(signal.SIGINT),
            signal.getsignal(signal.SIGTERM), torch.get_rng_state().sum().item(), random.getstate()[1][:3],
            int(np.random.get_state()[1][0]), matplotlib.get_backend())
before = snapshot()
segmenter = segnext.Segmenter.from_checkpoint({str(checkpoint_path)!r},
                                              test_config=segnext.TestConfig(img_scale=(64, 48)))
image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
labels = segmenter.predict(image)
results = {{"confusion": np.ones((150, 150), dtype=np.int64), "predictions": [(image, labels, labels)]}}
save_report_data({str(tmp_path)!r}, results, segmenter.palette, None, 255)
assert write_report({str(tmp_path)!r}).png is not None
assert snapshot() == before, (snapshot(), before)
import segnext.runtime
segnext.runtime.configure_process(threads=1)
assert PIL.Image.MAX_IMAGE_PIXELS == segnext.runtime.MAX_IMAGE_PIXELS and torch.get_num_threads() == 1
print("ok")
"""
    assert _run(code) == "ok"
