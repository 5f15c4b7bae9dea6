"""Every attribute class changes the rendered silhouette sequence, measured with everything else fixed."""
from __future__ import annotations

import numpy as np
import pytest

from ragar_data.attributes import default_schema
from ragar_data.identity import SequenceKey
from ragar_data.synth import SynthConfig, render_masks

CONFIG = SynthConfig.small(width=320, height=180, seconds=1.0)
VIEWS = (0, 90)  # front and side: every effect shows in at least one of them
BASE = np.zeros(15, dtype=np.int8)  # first class of every attribute


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """1 - IoU of two silhouette sequences (0 = identical)."""
    return float((a ^ b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def base_masks():
    return {view: render_masks(CONFIG, SequenceKey("001", 0, "nm-01", view), BASE) for view in VIEWS}


@pytest.mark.parametrize("attribute", default_schema().names)
def test_each_class_changes_the_silhouettes(attribute, base_masks):
    schema = default_schema()
    index = schema.names.index(attribute)
    for class_index in range(1, schema[attribute].num_classes):
        labels = BASE.copy()
        labels[index] = class_index
        changes = [difference(render_masks(CONFIG, SequenceKey("001", 0, "nm-01", view), labels), base_masks[view])
                   for view in VIEWS]
        assert max(changes) > 0.02, f"{attribute}={schema[attribute].classes[class_index]}: change {changes}"


def _mean_box(labels, view=90):
    masks = render_masks(CONFIG, SequenceKey("001", 0, "nm-01", view), labels)
    rows = masks.any(axis=2)
    heights = rows.shape[1] - np.argmax(rows[:, ::-1], axis=1) - np.argmax(rows, axis=1)
    return heights.mean(), masks.sum(axis=(1, 2)).mean()


def test_graded_height_and_body_mass():
    schema = default_schema()
    heights, areas = [], []
    for k in range(5):
        labels = BASE.copy()
        labels[schema.names.index("height")] = k
        heights.append(_mean_box(labels)[0])
    for k in range(4):
        labels = BASE.copy()
        labels[schema.names.index("body_mass")] = k
        height, area = _mean_box(labels)
        areas.append(area / height)
    assert np.all(np.diff(heights) > 0), heights
    assert np.all(np.diff(areas) > 0), areas
