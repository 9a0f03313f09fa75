"""Size and render time of report.html for a run folder (default: the demo, evaluated first if needed).

    python benchmarks/html_report.py                     # robustpath eval (the demo) into a temporary folder
    python benchmarks/html_report.py --run RUN_DIR       # an existing `robustpath eval` folder
    python benchmarks/html_report.py --max-images 12     # --html-max-images

Prints the size of the report.html eval wrote (the stated budget: the demo's under 4 MiB), then
re-renders the page as ``robustpath report RUN_DIR`` does (the corruption gallery as the run's
PNG) ``--repeats`` times: its size, what it is made of (images in the pool, how many, the rest
of the markup) and the median render time.  Timings on a shared machine are noisy: compare medians.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_BYTES = 4 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing run folder (default: evaluate the demo first)")
    parser.add_argument("--max-images", type=int, default=None, help="--html-max-images (default: the CLI's)")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    from robustpath.output.report.html import DEFAULT_MAX_IMAGES, find_run_folders, render_html_report
    from robustpath.output.report.writer import load_runs
    from robustpath.results.robustness import summarise_results

    with tempfile.TemporaryDirectory(prefix="robustpath-html-") as scratch:
        run = arguments.run
        if run is None:
            run = Path(scratch) / "demo"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "robustpath", "eval", "--out", str(run), "--no-cache", "--quiet"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            written = (run / "report.html").stat().st_size
            print(f"demo eval: {time.perf_counter() - started:.1f} s; its report.html: {written / 1e6:.2f} MB "
                  f"({'within' if written <= BUDGET_BYTES else 'OVER'} the {BUDGET_BYTES / 2**20:.0f} MiB budget)")
        table, records = load_runs([run])
        summary = summarise_results(table, records)
        max_images = DEFAULT_MAX_IMAGES if arguments.max_images is None else arguments.max_images
        seconds, page = [], ""
        for _ in range(arguments.repeats):
            started = time.perf_counter()
            page = render_html_report(table, records, summary, run_folders=find_run_folders([run]),
                                      max_images=max_images, gallery=_gallery_png(run))
            seconds.append(time.perf_counter() - started)
    size = len(page.encode("utf-8"))
    pool = re.search(r'<script type="application/json" id="rp-images">(.*?)</script>', page, re.S).group(1)
    images = json.loads(pool)
    print(f"report.html: {size / 1e6:.2f} MB ({'within' if size <= BUDGET_BYTES else 'OVER'} the "
          f"{BUDGET_BYTES / 2**20:.0f} MiB budget), --html-max-images {max_images}")
    print(f"  images: {len(images)} distinct, {len(pool) / 1e6:.2f} MB as data URIs; "
          f"the rest (tables, SVG, markup, style, script): {(size - len(pool)) / 1e6:.2f} MB")
    cards = page.count('<figure class="case')
    print(f"  cards in the failure gallery: {cards}")
    print(f"render: median {statistics.median(seconds):.2f} s over {len(seconds)} (each: "
          + ", ".join(f"{s:.2f}" for s in seconds) + ")")


def _gallery_png(run: Path):
    from robustpath.output.report.writer import run_gallery_png

    return run_gallery_png([run])


if __name__ == "__main__":
    main()
