"""The model registry: every attribute recogniser by name, built with `create_model(name, **kwargs)`.

As timm's ``@register_model``: a model file defines a constructor function and decorates it; the function's
name is the model's name and its keyword arguments are the model's options. The registry only maps names to
constructors and says which input each model reads (``silhouettes`` or ``keypoints_2d``); it owns no
architecture. Model files are imported on first use from the explicit list `MODEL_MODULES`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ragar_data.errors import InputError, RagarDataError

INPUT_FIELDS = ("silhouettes", "keypoints_2d")
# One module per model family (timm's layout); importing one registers its models.
MODEL_MODULES = ("deepgaitv2", "gaitset", "gaitpart", "gaitgl", "gaitbase", "gaitgraph", "gaitgraph2", "gaittr",
                 "gpgait", "garnet")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    constructor: Callable
    input_field: str
    module: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(function: Callable | None = None, *, input_field: str = "silhouettes"):
    """Decorator: register ``function`` under its own name (``@register_model`` or
    ``@register_model(input_field="keypoints_2d")``)."""
    if input_field not in INPUT_FIELDS:
        raise InputError(f"input_field must be one of {INPUT_FIELDS}, got {input_field!r}")

    def register(constructor: Callable) -> Callable:
        name = constructor.__name__
        if name in _REGISTRY and _REGISTRY[name].constructor is not constructor:
            raise InputError(f"model {name!r} is registered twice ({_REGISTRY[name].module}, {constructor.__module__})")
        _REGISTRY[name] = ModelEntry(name, constructor, input_field, constructor.__module__)
        return constructor

    return register(function) if function is not None else register


def _import_model_modules() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(f"ragar_data.models.{module}")


def list_models() -> list[str]:
    _import_model_modules()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _import_model_modules()
    if name not in _REGISTRY:
        raise RagarDataError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs):
    """The registered model ``name`` built with ``kwargs`` (e.g. ``schema=``, ``loss=``)."""
    return model_entry(name).constructor(**kwargs)
