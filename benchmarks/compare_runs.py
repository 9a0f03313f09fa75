"""Compare the outputs of two code versions: the same runs, byte for byte.

Runs ``robustpath eval`` twice per workload, once with a base git ref (exported
to a temporary folder with ``git archive``) and once with the current working
tree, each in a subprocess whose PYTHONPATH points at that checkout, and
compares results.csv, predictions.csv and the table lines of report.md.

Workloads: the demo set, and a small image folder (demo-ihc patches written as
PNG files, ROOT/<class>/*.png).  Prints one line per compared file and exits 1
on any difference; meant for refactors that must not change behaviour::

    python benchmarks/compare_runs.py --base main [--pin-code-digest]
    python benchmarks/compare_runs.py --base main --pin-code-digest --chunk-bytes 24000 --window-bytes 1

``--chunk-bytes`` and ``--window-bytes`` set the sweep's chunk of decoded images and its
window of embeddings in flight (robustpath.embedding.plan) in both runs, so that the small
test splits span several chunks (24,000 bytes: five 40-px patches) and go one variant at a time.

The run_id in results.csv digests, among the run's inputs, the source bytes of the code
that makes embeddings (corruptions/, models/, the engine, data/images.py, data/dataset.py),
so any edit of those files changes it.  ``--pin-code-digest`` replaces that source digest by
one constant in both runs, so that the comparison is of behaviour, not of source bytes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPARED_FILES = ("results.csv", "predictions.csv", "report.md")
FAST_OPTIONS = (
    "--device", "cpu", "--no-cache", "--bootstrap", "40", "--quiet",
    "--corruption", "gaussian_blur", "--corruption", "hue",
    "--severity", "1", "--severity", "3",
)


def export_ref(ref: str, folder: Path) -> Path:
    """The tree of git ``ref`` written to ``folder`` (no .git, no build outputs)."""
    archive = folder / "base.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), ref], check=True)
    target = folder / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    return target


def write_image_folder(root: Path, every: int) -> Path:
    """Every ``every``-th demo-ihc patch as ROOT/<class>/<id>.png (written with the current tree)."""
    script = (
        "import sys; from pathlib import Path; from PIL import Image; import numpy as np\n"
        "from robustpath.data.demo import load_demo_dataset\n"
        "root, every = Path(sys.argv[1]), int(sys.argv[2])\n"
        "ds = load_demo_dataset()\n"
        "for i in range(0, len(ds.sample_ids), every):\n"
        "    folder = root / ds.classes[int(ds.labels[i])]\n"
        "    folder.mkdir(parents=True, exist_ok=True)\n"
        "    name = ds.sample_ids[i].split('/')[-1]\n"
        "    Image.fromarray(np.asarray(ds.reader(i))).save(folder / f'{name}.png')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(root), str(every)], check=True, env=child_env(REPO))
    return root


def child_env(checkout: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(checkout), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", NO_COLOR="1",
    )
    return env


CHILD = """
import importlib, os, runpy, sys
if os.environ.get("COMPARE_PIN_CODE_DIGEST"):
    for name in ("robustpath.embedding.cache", "robustpath.cache"):  # the module's home after and before the reorganisation
        try:
            module = importlib.import_module(name)
            break
        except ImportError:
            continue
    module.code_digest = lambda: "pinned"
for name in ("CHUNK_BYTES", "WINDOW_BYTES"):  # the sweep's chunk and window (robustpath.embedding.plan)
    if os.environ.get("COMPARE_" + name):
        setattr(importlib.import_module("robustpath.embedding.plan"), name, int(os.environ["COMPARE_" + name]))
sys.argv[0] = "robustpath"
runpy.run_module("robustpath", run_name="__main__", alter_sys=True)
"""


def run_eval(checkout: Path, data: str, out: Path, settings: dict[str, str]) -> None:
    """``python -m robustpath eval`` with ``checkout`` first on the import path, one torch thread;
    ``settings``: COMPARE_* variables read by CHILD."""
    command = [sys.executable, "-c", CHILD, "eval", "--data", data, "--out", str(out), *FAST_OPTIONS]
    env = {**child_env(checkout), **settings}
    done = subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"eval failed with {checkout} ({data}):\n{done.stderr[-3000:]}")


def compared_lines(path: Path) -> list[str]:
    """The lines compared: every line, except in report.md only the table lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.name == "report.md":
        return [line for line in lines if line.startswith("|")]
    return lines


def compare_file(base: Path, current: Path) -> str:
    """``identical`` or ``DIFFERENT`` with the first differing line of each side."""
    if not base.exists() or not current.exists():
        return f"DIFFERENT (missing: base {base.exists()}, current {current.exists()})"
    old, new = compared_lines(base), compared_lines(current)
    if old == new:
        return f"identical ({len(new)} lines)"
    for number, (line_old, line_new) in enumerate(zip(old, new), start=1):
        if line_old != line_new:
            return f"DIFFERENT at line {number}:\n    base:    {line_old}\n    current: {line_new}"
    return f"DIFFERENT line counts: base {len(old)}, current {len(new)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git ref to compare the working tree with")
    parser.add_argument("--every", type=int, default=3, help="image folder: every N-th demo patch")
    parser.add_argument("--pin-code-digest", action="store_true", help="one constant source digest in both runs' run_id")
    parser.add_argument("--chunk-bytes", type=int, help="the sweep's chunk of decoded images (plan.CHUNK_BYTES)")
    parser.add_argument("--window-bytes", type=int, help="the sweep's window of embeddings (plan.WINDOW_BYTES)")
    args = parser.parse_args()
    settings = {name: str(value) for name, value in (
        ("COMPARE_PIN_CODE_DIGEST", "1" if args.pin_code_digest else None), ("COMPARE_CHUNK_BYTES", args.chunk_bytes),
        ("COMPARE_WINDOW_BYTES", args.window_bytes)) if value is not None}
    differences = 0
    with tempfile.TemporaryDirectory(prefix="robustpath-compare-") as tmp:
        tmp_path = Path(tmp)
        checkouts = {"base": export_ref(args.base, tmp_path), "current": REPO}
        workloads = {"demo": "demo-ihc", "folder": str(write_image_folder(tmp_path / "images", args.every))}
        for workload, data in workloads.items():
            outs = {}
            for label, checkout in checkouts.items():
                (tmp_path / label).mkdir(exist_ok=True)
                outs[label] = tmp_path / label / workload
                run_eval(checkout, data, outs[label], settings)
            for name in COMPARED_FILES:
                verdict = compare_file(outs["base"] / name, outs["current"] / name)
                differences += verdict.startswith("DIFFERENT")
                print(f"{workload}/{name}: {verdict}", flush=True)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
