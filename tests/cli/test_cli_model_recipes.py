"""The foundation-model aliases on the command line: the listing, dry runs offline with the Hub
redirected to local copies (and their one-line refusals without them), and the pooling in run.json."""
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
from recipe_cards import CARDS, hub_cache, install_replica, shrink_alias  # noqa: E402,F401
from typer.testing import CliRunner  # noqa: E402

from robustpath.cli.main import app  # noqa: E402
from robustpath.models import list_model_aliases  # noqa: E402
from robustpath.models.recipes import UNSUPPORTED, list_recipes  # noqa: E402

runner = CliRunner()
RECIPE_ALIASES = [recipe.alias for recipe in list_recipes()]


def _one_line_error(result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_models_lists_every_alias_with_licence_gating_and_card_pooling(monkeypatch):
    from robustpath.cli import support as cli_support

    monkeypatch.setattr(cli_support, "PIPE_WIDTH", 2000)  # one table row per line
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 4}
    for alias in list_model_aliases():
        row = rows[alias.name]
        assert alias.licence in row and ("yes (HF_TOKEN)" if alias.gated else "│ no ") in row
        if alias.recipe is not None:
            assert f"{alias.recipe.pooling} ({alias.recipe.embed_dim}-d, card)" in row
    assert "cls+mean (2560-d, card)" in rows["virchow2"] and "cls (1536-d, card)" in rows["uni2-h"]
    details = runner.invoke(app, ["models", "--details"]).stdout
    for recipe in list_recipes():
        assert recipe.card in details
    assert "mlp_layer=timm.layers.SwiGLUPacked" in details and "reg_tokens=8" in details


@pytest.mark.parametrize("name", RECIPE_ALIASES)
def test_dry_run_works_offline_with_a_local_copy(name, hub_cache, tmp_path, monkeypatch):
    card = CARDS[name]
    install_replica(card, hub_cache, tmp_path)
    recipe = shrink_alias(name, monkeypatch)
    extra = ["--trust-remote-code"] if recipe.trust_remote_code else []
    result = runner.invoke(app, ["eval", name, "--dry-run", "--out", str(tmp_path / "out"), *extra])
    assert result.exit_code == 0, result.output
    assert f"pooling   {recipe.pooling} (model card)" in result.stdout
    assert "known only once it is loaded" not in result.stdout  # the card gives the input size
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", RECIPE_ALIASES)
def test_dry_run_without_a_local_copy_is_one_line(name, hub_cache, tmp_path):
    recipe = next(r for r in list_recipes() if r.alias == name)
    extra = ["--trust-remote-code"] if recipe.trust_remote_code else []
    line = _one_line_error(runner.invoke(app, ["eval", name, "--dry-run", "--out", str(tmp_path / "o"), *extra]), 1)
    assert f"no copy of '{recipe.repo}'" in line and f"hf download {recipe.repo}" in line


@pytest.mark.parametrize("model", UNSUPPORTED, ids=lambda m: m.alias)
def test_unsupported_aliases_refuse_in_one_line_naming_what_to_install(model, tmp_path):
    line = _one_line_error(runner.invoke(app, ["eval", model.alias, "--dry-run", "--out", str(tmp_path)]), 1)
    assert "not supported yet" in line and ("pip install" in line or "PyPI" in line)


def test_repository_code_alias_without_the_option_is_one_line(tmp_path):
    line = _one_line_error(runner.invoke(app, ["eval", "hibou-l", "--dry-run", "--out", str(tmp_path)]), 1)
    assert "--trust-remote-code" in line


def test_run_json_records_the_pooling_so_runs_compare(hub_cache, tmp_path, monkeypatch):
    install_replica(CARDS["virchow2"], hub_cache, tmp_path)
    shrink_alias("virchow2", monkeypatch)
    records = {}
    for pooling in (None, "card", "cls"):
        out = tmp_path / f"run-{pooling}"
        args = ["eval", "virchow2", "--out", str(out), "-c", "hue", "-s", "1", "-t", "linear_probe", "--quiet",
                "--device", "cpu", "--no-cache", *(["--pooling", pooling] if pooling else [])]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        records[pooling] = json.loads((out / "run.json").read_text())
    for pooling in (None, "card"):
        model = records[pooling]["model"]
        assert (model["pooling"], model["pooling_source"], model["embed_dim"]) == ("cls+mean", "model card", 96)
        assert model["recipe"]["card"] == "https://huggingface.co/paige-ai/Virchow2"
    assert records["card"]["spec"]["pooling"] == "card"
    assert (records["cls"]["model"]["pooling"], records["cls"]["model"]["pooling_source"]) == ("cls", "--pooling")
    assert records["cls"]["model"]["embed_dim"] == 48
