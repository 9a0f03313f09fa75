"""Model loading: the Encoder contract, model specs and aliases, adapters."""
from robustpath.models.base import Encoder, Preprocessing
from robustpath.models.registry import (
    DEMO_MODEL,
    list_model_aliases,
    list_model_sources,
    load_encoder,
    resolve_model_spec,
)

__all__ = [
    "DEMO_MODEL",
    "Encoder",
    "Preprocessing",
    "list_model_aliases",
    "list_model_sources",
    "load_encoder",
    "resolve_model_spec",
]
