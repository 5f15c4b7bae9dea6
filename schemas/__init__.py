"""The data contract: attribute, shard, annotation and partition schemas as YAML files.

This package only locates the files; `ragar_data.attributes` and `ragar_data.shards` load and check them.
"""
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


def schema_path(name: str) -> Path:
    """Path of a schema file shipped in this package, e.g. ``schema_path("attributes.yaml")``."""
    path = SCHEMA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"schema file {path} is missing from the installed package")
    return path
