"""The attribute schema (15 RA-GAR attributes, 45 classes) loaded and validated from `schemas/attributes.yaml`.

Owns class names, class order, the text-template sentences and the 15-index <-> 45-dim one-hot mapping.
It does not own annotation files (see `ragar_data.annotations`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from ragar_data.errors import InputError, SchemaError
from ragar_data.schemas import schema_path

REGIONS = ("global", "upper_body", "middle_body", "lower_body")
KINDS = ("static", "motion")


@dataclass(frozen=True)
class Attribute:
    id: str
    name: str
    subject: str
    verb: str
    region: str
    kind: str
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_index(self, value: str | int) -> int:
        """Class index from a class name or an index (int or digit string); raises ValueError otherwise."""
        if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().isdigit()):
            index = int(value)
            if 0 <= index < self.num_classes:
                return index
            raise InputError(f"{self.name}: class index {index} out of range 0..{self.num_classes - 1}")
        name = str(value).strip().lower()
        for index, class_name in enumerate(self.classes):
            if class_name.lower() == name:
                return index
        raise InputError(f"{self.name}: unknown class {value!r}; expected one of {list(self.classes)}")


@dataclass(frozen=True)
class AttributeSchema:
    version: int
    template: str
    attributes: tuple[Attribute, ...]
    provisional_class_names: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def num_classes(self) -> tuple[int, ...]:
        return tuple(a.num_classes for a in self.attributes)

    @property
    def total_classes(self) -> int:
        return sum(self.num_classes)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each attribute's block in the 45-dim one-hot vector."""
        return np.concatenate([[0], np.cumsum(self.num_classes)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.attributes)

    def __getitem__(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name or attribute.id == name:
                return attribute
        raise KeyError(f"unknown attribute {name!r}; known: {list(self.names)}")

    def sentence(self, attribute: Attribute, class_index: int) -> str:
        return self.template.format(
            subject=attribute.subject, verb=attribute.verb, value=attribute.classes[class_index]
        )

    def sentences(self) -> list[str]:
        """The 45 class sentences in one-hot order (attribute order, then class order)."""
        return [self.sentence(a, k) for a in self.attributes for k in range(a.num_classes)]

    def label_names(self) -> list[str]:
        """The 45 one-hot label names, ``"<attribute>=<class>"``, in one-hot order."""
        return [f"{a.name}={c}" for a in self.attributes for c in a.classes]

    def label_attribute(self) -> np.ndarray:
        """For each of the 45 labels, the index of its attribute."""
        return np.repeat(np.arange(len(self)), self.num_classes)

    def to_one_hot(self, class_indices: np.ndarray) -> np.ndarray:
        """(..., 15) class indices -> (..., 45) float32 one-hot; a negative index (unknown) gives zeros."""
        class_indices = np.asarray(class_indices, dtype=np.int64)
        if class_indices.shape[-1] != len(self):
            raise InputError(f"expected {len(self)} class indices in the last axis, got {class_indices.shape}")
        too_big = class_indices >= np.asarray(self.num_classes)
        if too_big.any():
            raise InputError(f"class index out of range in {class_indices[too_big.nonzero()]}")
        one_hot = np.zeros(class_indices.shape[:-1] + (self.total_classes,), dtype=np.float32)
        positions = self.offsets + np.clip(class_indices, 0, None)
        np.put_along_axis(one_hot, positions, (class_indices >= 0).astype(np.float32), axis=-1)
        return one_hot

    def from_scores(self, scores: np.ndarray) -> np.ndarray:
        """(..., 45) scores -> (..., 15) class indices by argmax within each attribute's block."""
        scores = np.asarray(scores)
        return np.stack(
            [scores[..., o : o + n].argmax(-1) for o, n in zip(self.offsets, self.num_classes)], axis=-1
        )


def _parse_attribute(entry: dict, index: int, path: Path) -> Attribute:
    where = f"{path}: attributes[{index}]"
    required = ("id", "name", "subject", "verb", "region", "kind", "classes")
    missing = [k for k in required if k not in entry]
    if missing:
        raise SchemaError(f"{where}: missing keys {missing}")
    if entry["region"] not in REGIONS:
        raise SchemaError(f"{where}: region {entry['region']!r} not in {REGIONS}")
    if entry["kind"] not in KINDS:
        raise SchemaError(f"{where}: kind {entry['kind']!r} not in {KINDS}")
    classes = tuple(str(c) for c in entry["classes"])
    if len(classes) < 2 or len(set(c.lower() for c in classes)) != len(classes):
        raise SchemaError(f"{where}: needs at least 2 distinct classes, got {list(classes)}")
    if any(c.strip().isdigit() for c in classes):
        raise SchemaError(f"{where}: a class name may not be a number (numbers are class indices)")
    return Attribute(
        id=str(entry["id"]), name=str(entry["name"]), subject=str(entry["subject"]),
        verb=str(entry["verb"]), region=entry["region"], kind=entry["kind"], classes=classes,
    )


def load_schema(path: str | Path | None = None) -> AttributeSchema:
    """Load and validate an attribute schema (default: the packaged `schemas/attributes.yaml`)."""
    path = Path(path) if path is not None else schema_path("attributes.yaml")
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SchemaError(f"{path}: cannot read attribute schema: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("attributes"), list):
        raise SchemaError(f"{path}: expected a mapping with an 'attributes' list")
    template = str(document.get("template", ""))
    if not all(f"{{{field}}}" in template for field in ("subject", "verb", "value")):
        raise SchemaError(f"{path}: template must contain {{subject}}, {{verb}} and {{value}}: {template!r}")
    attributes = tuple(_parse_attribute(e, i, path) for i, e in enumerate(document["attributes"]))
    for field in ("id", "name"):
        values = [getattr(a, field) for a in attributes]
        if len(set(values)) != len(values):
            raise SchemaError(f"{path}: duplicate attribute {field}s in {values}")
    return AttributeSchema(
        version=int(document.get("version", 1)), template=template, attributes=attributes,
        provisional_class_names=bool(document.get("provisional_class_names", False)),
    )


@lru_cache(maxsize=1)
def default_schema() -> AttributeSchema:
    """The packaged RA-GAR schema, loaded once."""
    return load_schema()
