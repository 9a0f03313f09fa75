"""The libraries a process loads: only those its command uses (each import costs start-up time).

Checked in fresh subprocesses through sys.modules: ``--help`` loads no heavy library, the eval
path loads none before it needs it, and a real ``eval`` loads scikit-learn/scipy only for the
linear probe and matplotlib only for plots (the probe run is the control: the check sees a load).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from process_fixtures import environment

HEAVY = ("torch", "pandas", "sklearn", "scipy", "matplotlib", "rich", "transformers", "open_clip", "timm", "pyarrow")
REPORT = "import atexit, json, sys\natexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"


def loaded_after(tmp_path, code: str) -> set[str]:
    """The HEAVY top-level modules in sys.modules when a fresh process running ``code`` exits."""
    done = subprocess.run([sys.executable, "-c", REPORT + code], env=environment(tmp_path), capture_output=True,
                          text=True, timeout=600)
    *messages, last = done.stderr.strip().splitlines()
    assert done.returncode == 0, "\n".join(messages[-20:])
    modules = json.loads(last)
    return {name for name in HEAVY if name in modules}


def cli(*args: str) -> str:
    return f"sys.argv = ['robustpath', *{list(args)!r}]\nfrom robustpath.cli import run\nrun()\n"


def test_help_loads_no_heavy_library(tmp_path):
    assert loaded_after(tmp_path, cli("--help")) == set()
    assert loaded_after(tmp_path, cli("eval", "--help")) == set()


def test_the_eval_path_loads_no_library_before_it_needs_it(tmp_path):
    # torch: the sweep; everything else is imported where it is used
    assert loaded_after(tmp_path, "import robustpath.cli.main, robustpath.run.runner\n") == {"torch"}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


@pytest.mark.parametrize(("task", "formats", "expected"), [
    ("retrieval", ("csv",), {"torch", "pandas"}),
    ("linear_probe", ("csv",), {"torch", "pandas", "sklearn", "scipy"}),  # the control: the probe needs them
    ("retrieval", ("csv", "markdown"), {"torch", "pandas", "matplotlib"}),  # markdown draws the plots
])
def test_a_run_loads_what_its_tasks_and_formats_use(tmp_path, tiny_customvit_dir, image_folder, task, formats,
                                                     expected):
    options = ["eval", str(tiny_customvit_dir), "--data", str(image_folder), "-t", task, "-c", "hue", "-s", "1",
               "--device", "cpu", "--no-cache", "--quiet", "--bootstrap", "40", "--out", str(tmp_path / "out")]
    for name in formats:
        options += ["-f", name]
    loaded = loaded_after(tmp_path, cli(*options)) - {"rich"}  # rich: the terminal tables
    assert loaded == expected
