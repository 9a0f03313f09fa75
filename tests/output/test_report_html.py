"""report.html: its numbers are those of the CSV files, its failure gallery shows the rows of
misclassified.csv, its images are what the sweep saw, and it references nothing outside itself.

The page is parsed with the standard library's html.parser; references are the CSV files the
run wrote, pandas, scikit-image and the model's own embeddings saved by the sweep.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engine_fixtures import cli
from html_fixtures import decode_image, html_runs, image_pool, parse_html, table_rows  # noqa: F401  (fixture)
from model_fixtures import tiny_open_clip  # noqa: F401  (fixture)

MAX_IMAGES = 6  # the default of --html-max-images
VOTE_K = 5


def page_of(folder: Path):
    return parse_html((folder / "report.html").read_text(encoding="utf-8"))


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


@pytest.mark.parametrize("which", ["clip", "merged"])
def test_the_results_table_is_results_csv_cell_for_cell(html_runs, which):
    out = getattr(html_runs, which)
    header, body = read_csv_rows(out / "results.csv")
    table = page_of(out).find("table", id="table-results")
    assert [th.text() for th in table.find("thead").find_all("th")] == header
    assert table_rows(table) == body


def test_summary_tables_and_grids_carry_the_csv_values(html_runs):
    out = html_runs.clip
    page = page_of(out)
    ranking = pd.read_csv(out / "robustness_ranking.csv", dtype=str, keep_default_na=False)
    shown = table_rows(page.find("table", id="table-ranking"))
    expected = ranking[["dataset", "task", "metric", "rank", "model", "clean_value", "mean_retention",
                        "mean_normalised_auc", "mce", "relative_mce", "worst_condition", "run_id"]].values.tolist()
    assert shown == expected
    worst = pd.read_csv(out / "robustness_worst_conditions.csv", dtype=str, keep_default_na=False)
    assert table_rows(page.find("table", id="table-worst")) == worst[
        ["model", "dataset", "task", "metric", "condition", "clean_value", "mean_value", "mean_drop", "mean_retention",
         "worst_value", "run_id"]].values.tolist()
    blur = pd.read_csv(out / "robustness_blur_stages.csv", dtype=str, keep_default_na=False)
    assert table_rows(page.find("table", id="table-blur-stages")) == blur[
        ["model", "dataset", "task", "metric", "severity", "pre_value", "post_value", "post_minus_pre",
         "run_id"]].values.tolist()

    results = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    results = results[results.samples_per_class == "0"]
    grids = page.find_all("table", cls="grid")
    assert len(grids) == results[["task", "metric"]].drop_duplicates().shape[0]  # every metric of the run
    checked = 0
    for grid in grids:
        task, metric = grid.attrs["aria-label"].split(" · ")
        severities = [th.text().removeprefix("sev ") for th in grid.find("thead").find_all("th")[1:-1]]
        for row in grid.find("tbody").find_all("tr"):
            cells = row.find_all("td")
            label = cells[0].text()
            corruption, stage = (label.split(" (")[0], label.split("(")[1].split("-")[0]) if "(" in label else (label, "pre")
            for severity, cell in zip(severities, cells[1:-1]):
                match = results[(results.task == task) & (results.metric == metric) & (results.corruption == corruption)
                                & (results.stage == stage) & (results.severity == severity)]
                assert cell.attrs["data-value"] == match.value.item()
                checked += 1
    assert checked == len(results[results.corruption != "none"])


def test_curve_tooltips_give_the_csv_values(html_runs):
    out = html_runs.clip
    results = pd.read_csv(out / "results.csv")
    results = results[results.samples_per_class == 0]
    page = page_of(out)
    points = 0
    for group in page.find("section", id="curves").find_all("section", cls="chart-group"):
        dataset, task, metric = group.find("h3").text().split(" · ")
        for panel in group.find_all("figure", cls="panel"):
            condition = panel.attrs["data-panel"]
            corruption, stage = (condition.split(" (")[0], "post") if "(post" in condition else (condition, "pre")
            for circle in panel.find_all("circle"):
                tip = circle.find("title").text()
                severity, value, low, high = re.search(r"severity (\d+): ([\d.]+) \(95% CI ([\d.]+)–([\d.]+)\)", tip).groups()
                rows = results[(results.task == task) & (results.metric == metric)]
                row = rows[rows.corruption == "none"] if severity == "0" else rows[
                    (rows.corruption == corruption) & (rows.stage == stage) & (rows.severity == int(severity))]
                assert (value, low, high) == tuple(f"{row[c].item():.3f}" for c in ("value", "ci_low", "ci_high"))
                points += 1
    assert points == 3 * 4 * 3  # tasks × conditions (blur pre, blur post, markup, brightness) × (clean + 2 severities)


def cells_of(page, run_id: str):
    """(task, corruption, severity, stage) → (severity block, flipped cases, stayed-right cases)."""
    found = {}
    for block in page.find_all("div", cls="severity", data_run=run_id):
        key = (block.attrs["data-task"], block.attrs["data-corruption"], int(block.attrs["data-severity"]),
               block.attrs["data-stage"])
        found[key] = (block, block.find_all("figure", cls="flipped"), block.find_all("figure", cls="right"))
    return found


def expected_flips(listed: pd.DataFrame, key: tuple) -> tuple[list[str], int, int]:
    """(sample ids to show, flipped, broken) of a cell, from misclassified.csv: broken flips first, file order."""
    task, corruption, severity, stage = key
    in_cell = listed[(listed.task == task) & (listed.corruption == corruption) & (listed.severity == str(severity))
                     & (listed.stage == stage) & (listed.changed == "True")]
    broke = in_cell[(in_cell.clean_predicted_label == in_cell.true_label) & (in_cell.predicted_label != in_cell.true_label)]
    shown = [*broke.sample_id, *in_cell.drop(broke.index).sample_id][:MAX_IMAGES - MAX_IMAGES // 3]
    return shown, len(in_cell), len(broke)


def check_case_labels(figure, row, task: str) -> None:
    """The figure's labels are the row's; retrieval shows the VOTE_K nearest training images of predictions.csv."""
    text = figure.find("figcaption").text()
    assert f"true {row.true_label}" in text and f"→ corrupted {row.predicted_label}" in text
    neighbours = [img.attrs["alt"] for img in figure.find_all("img", cls="thumb")[2:]]
    expected = []
    if task == "retrieval":
        pairs = zip(row.neighbours.split(";")[:VOTE_K], row.neighbour_labels.split(";")[:VOTE_K])
        expected = [f"neighbour {k}: {i} ({label})" for k, (i, label) in enumerate(pairs, 1)]
    assert neighbours == expected


def test_the_failure_gallery_shows_the_flips_misclassified_csv_lists(html_runs):
    out = html_runs.clip
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    listed = pd.read_csv(out / "misclassified.csv", dtype=str, keep_default_na=False)
    predictions = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    cells = cells_of(page_of(out), run_id)
    assert {key[0] for key in cells} == {"linear_probe", "retrieval", "zeroshot"}
    corrupted = predictions[predictions.corruption != "none"]
    assert set(cells) == {(t, c, int(s), st) for t, c, s, st in corrupted[["task", "corruption", "severity", "stage"]]
                          .drop_duplicates().itertuples(index=False)}
    flips_seen = 0
    for key, (block, flipped, right) in cells.items():
        task, corruption, severity, stage = key
        shown, flipped_count, broken_count = expected_flips(listed, key)
        assert [figure.attrs["data-sample"] for figure in flipped] == shown
        flips_seen += len(shown)
        rows = corrupted[(corrupted.task == task) & (corrupted.corruption == corruption)
                         & (corrupted.severity == str(severity)) & (corrupted.stage == stage)].set_index("sample_id")
        assert f"{flipped_count} flipped of {len(rows)}, {broken_count} right → wrong" in block.find("h4").text()
        clean = predictions[(predictions.task == task) & (predictions.corruption == "none")].set_index("sample_id")
        assert len(right) <= MAX_IMAGES // 3
        for figure in right:
            sample = figure.attrs["data-sample"]
            assert rows.loc[sample, "predicted_label"] == rows.loc[sample, "true_label"] == clean.loc[sample, "predicted_label"]
        for figure in flipped + right:
            check_case_labels(figure, rows.loc[figure.attrs["data-sample"]], task)
    assert flips_seen > 10


def test_thumbnails_are_the_images_the_sweep_embedded(html_runs, tiny_open_clip):
    import torch
    from skimage.filters import gaussian

    import robustpath
    from robustpath.data import load_dataset
    from robustpath.models import load_encoder
    from robustpath.models.preprocess import normalise, resize_to_input

    out = html_runs.clip
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    page = page_of(out)
    pool = image_pool(page)
    demo = load_dataset("demo-ihc")
    index = {sample_id: i for i, sample_id in enumerate(demo.sample_ids)}
    encoder = load_encoder(tiny_open_clip.spec)
    saved = robustpath.load_embeddings(out)

    def embed(image: np.ndarray, resize: bool) -> np.ndarray:
        x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
        if resize:
            x = resize_to_input(x, encoder.preprocessing)
        with torch.inference_mode():
            return encoder.encode_image(normalise(x, encoder.preprocessing))[0].numpy()

    checked = {"clean": 0, "blur": 0, "embedding": 0}
    for (task, corruption, severity, stage), (_, flipped, right) in cells_of(page, run_id).items():
        if task != "linear_probe":
            continue
        embeddings, samples = saved[f"{corruption}/{severity}/{stage}"]
        for figure in (flipped + right)[:2]:
            sample = figure.attrs["data-sample"]
            clean_img, corrupted_img = figure.find_all("img", cls="thumb")[:2]
            clean = decode_image(pool[clean_img.attrs["data-image"]])
            assert np.array_equal(clean, demo.read_image(index[sample]))
            checked["clean"] += 1
            corrupted = decode_image(pool[corrupted_img.attrs["data-image"]])
            assert corrupted.shape == ((40, 40, 3) if stage == "pre" else (32, 32, 3))
            if corruption == "gaussian_blur" and stage == "pre":
                sigma = {2: 1.0, 4: 3.0}[severity]  # the pathology preset
                reference = gaussian(clean / 255.0, sigma=sigma, mode="nearest", truncate=4.0, channel_axis=-1)
                assert np.abs(corrupted.astype(int) - np.round(reference * 255).astype(int)).max() <= 1
                checked["blur"] += 1
            target = embeddings[samples.sample_id.tolist().index(sample)].numpy()
            error = np.linalg.norm(embed(corrupted, stage == "pre") - target) / np.linalg.norm(target)
            error_clean = np.linalg.norm(embed(clean, True) - target) / np.linalg.norm(target)
            assert error < 0.005 and error < error_clean / 4, (corruption, severity, stage, error, error_clean)
            checked["embedding"] += 1
    assert checked["clean"] >= 12 and checked["blur"] >= 2 and checked["embedding"] >= 12


def test_a_merged_report_reads_each_run_folder_and_its_images(html_runs):
    from PIL import Image

    page = page_of(html_runs.merged)
    pool = image_pool(page)
    runs = [json.loads((folder / "run.json").read_text())["run_id"] for folder in (html_runs.clip, html_runs.folder)]
    for run_id in runs:
        assert cells_of(page, run_id), run_id
    folder_run = runs[1]
    listed = pd.read_csv(html_runs.folder / "misclassified.csv", dtype=str, keep_default_na=False)
    paths = dict(zip(listed.sample_id, listed.path))
    compared = 0
    for _, flipped, _ in cells_of(page, folder_run).values():
        assert len(flipped) <= 6 - 6 // 3  # the merge's own --html-max-images (default), not the run's
        for figure in flipped:
            clean_img = figure.find_all("img", cls="thumb")[0]
            with Image.open(paths[figure.attrs["data-sample"]]) as image:
                assert np.array_equal(decode_image(pool[clean_img.attrs["data-image"]]), np.asarray(image.convert("RGB")))
            compared += 1
    assert compared > 0
    assert "could not be read" not in page.text() and "cannot be shown" not in page.text()


def test_the_run_folders_own_report_uses_its_max_images(html_runs):
    run_id = json.loads((html_runs.folder / "run.json").read_text())["run_id"]
    cells = cells_of(page_of(html_runs.folder), run_id)
    assert max(len(flipped) for _, flipped, _ in cells.values()) == 3 - 3 // 3
    assert max(len(right) for _, _, right in cells.values()) == 1


def test_missing_images_files_and_changed_presets_are_said_not_fatal(html_runs, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(html_runs.folder, moved)
    listed = pd.read_csv(moved / "misclassified.csv", dtype=str, keep_default_na=False)
    listed["path"] = listed.path.str.replace(str(html_runs.data), str(tmp_path / "gone"), regex=False)
    listed.to_csv(moved / "misclassified.csv", index=False)
    record = json.loads((moved / "run.json").read_text())
    record["spec"]["data"] = str(tmp_path / "gone")
    (moved / "run.json").write_text(json.dumps(record))

    changed = tmp_path / "changed"
    shutil.copytree(html_runs.clip, changed)
    record = json.loads((changed / "run.json").read_text())
    record["preset"]["variants"][0]["parameter"] = 9.5
    (changed / "run.json").write_text(json.dumps(record))

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("results.csv", "run.json"):
        shutil.copy(html_runs.folder / name, bare / name)

    for folder, expected in ((moved, "could not be read"), (changed, "Corrupted images cannot be shown: the preset"),
                             (bare, "has no misclassified.csv")):
        out = tmp_path / f"report-{folder.name}"
        result = cli("report", folder, "--out", out, "-f", "html")
        assert result.exit_code == 0, result.output
        text = " ".join(page_of(out).find("section", id="failures").text().split())
        assert expected in text, text[:2000]
    placeholders = page_of(tmp_path / "report-moved").find_all("div", cls="missing")
    assert placeholders and all("image unavailable" in p.attrs["aria-label"] for p in placeholders)


def test_the_page_references_nothing_outside_itself(html_runs):
    page = page_of(html_runs.merged)
    for element in page.find_all():
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            value = element.attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), (element.tag, name, (value or "")[:80])
    style = page.find("style").text()
    assert all(url.startswith("data:") for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", style))
    assert "@import" not in style
    ids = [element.attrs["id"] for element in page.find_all() if "id" in element.attrs]
    assert len(ids) == len(set(ids))  # anchors, scripts and toggles find one element each


def test_its_policy_allows_only_its_own_script_style_and_images(html_runs):
    page = page_of(html_runs.merged)
    scripts = [s for s in page.find_all("script") if s.attrs.get("type") != "application/json"]
    assert len(scripts) == 1 and "src" not in scripts[0].attrs
    policy = page.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in policy and "img-src data:" in policy
    for source, directive in ((scripts[0].text(), "script-src"), (page.find("style").text(), "style-src")):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in policy
    images = image_pool(page)
    assert images and all(uri.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for uri in images.values())
    used = {img.attrs["data-image"] for img in page.find_all("img")}
    assert used <= set(images) and all(img.attrs.get("alt") for img in page.find_all("img"))


def test_html_is_a_format_of_its_own_and_its_options_are_checked(html_runs, tmp_path):
    assert all((folder / "report.html").is_file() for folder in (html_runs.clip, html_runs.folder, html_runs.merged))
    out = tmp_path / "only-html"
    result = cli("report", html_runs.clip, "--out", out, "-f", "html", "--html-max-images", "0")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir() if not path.name.startswith(".")) == ["report.html"]
    failures = page_of(out).find("section", id="failures")
    assert "Left out" in failures.text() and not failures.find_all("figure")
    result = cli("report", html_runs.clip, "--out", tmp_path / "bad", "--html-max-images", "-1")
    assert result.exit_code == 2 and "--html-max-images" in result.output
    result = cli("report", html_runs.clip, "--out", tmp_path / "md", "-f", "markdown", "--no-plots")
    assert result.exit_code == 0 and not (tmp_path / "md" / "report.html").exists()


def test_failure_selection_from_hand_written_files(tmp_path):
    """Broken flips first, then the others, in file order; stayed-right images of the flipped classes first."""
    from robustpath.output.report.html.failures import load_run_failures

    rows = [  # task, corruption, severity, stage, sample, true, predicted (clean rows first)
        *[("linear_probe", "none", 0, "none", f"s{i}", t, p) for i, (t, p) in enumerate(
            [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("a", "a"), ("c", "c"), ("c", "c")])],
        *[("linear_probe", "hue", 1, "pre", f"s{i}", t, p) for i, (t, p) in enumerate(
            [("a", "b"), ("a", "a"), ("b", "c"), ("b", "b"), ("a", "a"), ("c", "b"), ("c", "c")])],
    ]
    predictions = pd.DataFrame(rows, columns=["task", "corruption", "severity", "stage", "sample_id", "true_label",
                                              "predicted_label"])
    predictions.to_csv(tmp_path / "predictions.csv", index=False)
    clean = predictions[predictions.corruption == "none"].set_index("sample_id").predicted_label
    listed = predictions.assign(path="", clean_predicted_label=predictions.sample_id.map(clean))
    listed["wrong"] = listed.predicted_label != listed.true_label
    listed["changed"] = listed.predicted_label != listed.clean_predicted_label
    listed[listed.wrong | listed.changed].to_csv(tmp_path / "misclassified.csv", index=False)
    # under hue: s0 a→b broken, s1 b→a (wrong on clean, now right), s2 b→c broken, s5 c→b broken
    failures = load_run_failures(tmp_path, max_images=3, vote_k=5)
    (cell,) = failures.cells
    assert (cell.n, cell.flipped, cell.broken) == (7, 4, 3)
    assert [case.sample_id for case in cell.shown_flipped] == ["s0", "s2"]
    assert [case.sample_id for case in cell.shown_right] == ["s4"]  # class a (of s0) first; s1 was wrong on clean
    failures = load_run_failures(tmp_path, max_images=9, vote_k=5)
    assert [case.sample_id for case in failures.cells[0].shown_flipped] == ["s0", "s2", "s5", "s1"]
    assert [case.sample_id for case in failures.cells[0].shown_right] == ["s4", "s3", "s6"]


def test_thumbnails_keep_small_images_exact_shrink_large_ones_and_are_stored_once():
    from robustpath.output.report.html.thumbnails import THUMB_SIDE, ImagePool

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    large = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    pool = ImagePool()
    keys = [pool.add(small), pool.add(large), pool.add(small.copy())]
    assert keys[0] == keys[2] != keys[1] and len(pool.uris) == 2
    assert pool.uris[keys[0]].startswith("data:image/png") and np.array_equal(decode_image(pool.uris[keys[0]]), small)
    shrunk = decode_image(pool.uris[keys[1]])
    assert pool.uris[keys[1]].startswith("data:image/jpeg") and shrunk.shape == (THUMB_SIDE, 64, 3)
    assert pool.sizes[keys[1]] == (64, THUMB_SIDE)
