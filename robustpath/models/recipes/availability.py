"""Whether an alias's repository can be loaded without the network, checked without loading it.

With ``HF_HUB_OFFLINE`` set, a dry run of a foundation-model alias looks its repository's
config.json up in the local Hugging Face cache (no network, no weights read) and stops
with one line when it is missing; online, nothing is probed (a dry run touches no network).
"""
from __future__ import annotations

from robustpath.errors import ModelError
from robustpath.models import hub


def check_local_copy(recipe) -> None:
    """ModelError (one line, with the download recipe) when offline and the repository is not cached."""
    if not hub.hub_offline():
        return
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(recipe.repo, "config.json")
    if isinstance(found, str):
        return
    local_form = "timm:local-dir:DIR" if recipe.library == "timm" else "hf:DIR"
    gate = " (gated: accept its terms on the card and set HF_TOKEN)" if recipe.gated else ""
    raise ModelError(f"model '{recipe.alias}': no copy of '{recipe.repo}'{gate} in the local Hugging Face cache, "
                     f"and HF_HUB_OFFLINE is set; {hub.local_copy_hint(recipe.repo, local_form)}")
