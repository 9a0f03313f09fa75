"""The protocol examples run end to end on demo data with tiny models."""
import importlib.util
from pathlib import Path

from model_fixtures import tiny_hf_clip, tiny_hf_dinov2, tiny_open_clip  # noqa: F401  (fixtures)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(relative: str):
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_"), EXAMPLES / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pathclip_protocol(tmp_path, tiny_open_clip, tiny_hf_clip):
    protocol = _load("pathclip_benchmark/run_protocol.py")
    arguments = protocol.parse_arguments([
        "--data", "demo-ihc=demo-ihc", "--model", tiny_open_clip.spec, "--model", tiny_hf_clip.spec,
        "--corruption", "gaussian_blur", "--corruption", "resolution", "--severity", "2",
        "--out", str(tmp_path), "--device", "cpu",
    ])
    tables = protocol.run(arguments)
    assert len(tables) == 2
    for table in tables.values():
        assert set(table.task) == {"zeroshot", "retrieval"}
        assert set(table.corruption) == {"none", "gaussian_blur", "resolution"}
    text = protocol.summarise(tables)
    assert "zeroshot" in text and "retrieval" in text
    assert len(list(tmp_path.glob("demo-ihc__*/results.csv"))) == 2


def test_small_patch_protocol(tmp_path, tiny_hf_dinov2):
    protocol = _load("small_patch/run_protocol.py")
    arguments = protocol.parse_arguments([
        "--samples-per-class", "8", "16", "--seeds", "0", "1", "--foundation", tiny_hf_dinov2.spec,
        "--epochs", "1", "--width", "16", "--depth", "1", "--heads", "2", "--patch-size", "8",
        "--out", str(tmp_path), "--device", "cpu",
    ])
    rows = protocol.run(arguments)
    assert list(rows) == ["CustomViT, 8/class", "CustomViT, 16/class", f"{tiny_hf_dinov2.spec} linear probe"]
    assert all(len(summaries) == 2 for summaries in rows.values())
    text = protocol.summarise(rows)
    assert "±" in text and "blur drop, post" in text


def test_stain_labs_example(tmp_path):
    example = _load("stain_labs/run_stain_labs.py")
    arguments = example.parse_arguments([
        "--per-class", "3", "--corruption", "stain_vector", "--bootstrap", "100", "--out", str(tmp_path), "--device", "cpu",
    ])
    table = example.run(arguments)
    assert {"cross_group_retrieval", "robustness_index", "group_probe", "shift_distance"} <= set(table.task)
    text = example.summarise(table)
    assert "lab-a->lab-b" in text and "stain_vector" in text
    assert (tmp_path / "runs" / "customvit-demo" / "report.md").is_file()


def test_training_protocols(tmp_path, tiny_hf_dinov2):
    protocol = _load("training_protocols.py")
    arguments = protocol.parse_arguments([
        "--out", str(tmp_path), "--dinov2", tiny_hf_dinov2.spec, "--fine-tune-epochs", "1", "--mae-epochs", "1",
        "--train-epochs", "1", "--width", "16", "--depth", "1", "--heads", "2", "--samples-per-class", "4",
        "--repeats", "2", "--corruption", "gaussian_blur", "--severity", "2", "--device", "cpu",
    ])
    results = protocol.run(arguments)
    assert [(r["model"], r["protocol"]) for r in results["a"]] == [
        ("customvit-demo", "linear probe"), ("customvit-demo", "fine-tuning"), ("DINOv2", "linear probe"),
        ("DINOv2", "fine-tuning")]
    assert [r["encoder"] for r in results["b"]][:3] == ["untrained (random init)", "MAE, mask 0.25, patch 4",
                                                        "MAE, mask 0.75, patch 4"]
    assert all(len(values) == 2 for r in results["b"] for values in (r.get("probe") or r["trained"]).values())
    by_model = {(r["setting"], r["model"]): r["mce"] for r in results["c"]}
    assert by_model[("CustomViT from scratch", "customvit:no-augment")] == 1.0
    assert by_model[("fine-tuning customvit-demo", "finetuned:customvit-demo@ft-no-augment")] == 1.0
    text = protocol.summarise(results)
    assert "(a) probe vs fine-tuning" in text and "PSNR" in text and "mCE" in text
