"""Dataset inventory: sequence counts per attribute class and per covariate, and a class-distribution chart.

Owns counting over keys and labels and the bar chart. It does not own reading shards (`ragar_data.shards`,
through `ragar_data.split.sequence_labels`) nor printing (`ragar-data stats` in `cli/stats.py`).
"""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ragar_data.attributes import REGIONS, AttributeSchema, default_schema
from ragar_data.errors import RagarDataError
from ragar_data.identity import CONDITION_GROUPS, CONDITIONS, VIEWS, SequenceKey

# RA-GAR: 10 views x 3 combinations x 8 walks per subject
EXPECTED_SEQUENCES_PER_SUBJECT = len(VIEWS) * 3 * len(CONDITIONS)


def sequence_stats(keys: Sequence[str], labels: np.ndarray, schema: AttributeSchema | None = None) -> dict:
    """Counts over sequences given their keys and (N, 15) class indices (-1 = not annotated)."""
    schema = schema or default_schema()
    parsed = [SequenceKey.parse(k) for k in keys]
    labels = np.asarray(labels, dtype=np.int64).reshape(len(parsed), len(schema))
    one_hot = schema.to_one_hot(labels) if len(parsed) else np.zeros((0, schema.total_classes), np.float32)
    class_counts = one_hot.sum(0).astype(np.int64)
    per_subject = Counter(k.subject for k in parsed)
    condition_groups = Counter(k.condition_group for k in parsed)
    conditions = Counter(k.condition for k in parsed)
    views = Counter(k.view for k in parsed)
    return {
        "sequences": len(parsed),
        "subjects": len(per_subject),
        "subject_combinations": len({(k.subject, k.combination) for k in parsed}),
        "unlabelled_sequences": int((labels < 0).all(1).sum()) if len(parsed) else 0,
        "partly_labelled_sequences": int(((labels < 0).any(1) & (labels >= 0).any(1)).sum()) if len(parsed) else 0,
        "classes": {
            attribute.name: dict(zip(attribute.classes, class_counts[o:o + attribute.num_classes].tolist()))
            for attribute, o in zip(schema.attributes, schema.offsets)
        },
        "condition_group": {g: condition_groups.get(g, 0) for g in CONDITION_GROUPS},
        "condition": {c: conditions.get(c, 0) for c in CONDITIONS},
        # the standard views first, then any other angle a dataset may hold
        "view": {v: views.get(v, 0) for v in sorted(set(VIEWS) | set(views))},
        "combination": {"real": sum(k.is_real for k in parsed), "simulated": sum(not k.is_real for k in parsed)},
        "sequences_per_subject": {
            "min": min(per_subject.values(), default=0), "max": max(per_subject.values(), default=0),
            "mean": float(np.mean(list(per_subject.values()))) if per_subject else 0.0,
            "expected": EXPECTED_SEQUENCES_PER_SUBJECT,
        },
    }


def dataset_stats(dataset_dir: str | Path) -> dict:
    """`sequence_stats` of a dataset's shards, plus frame counts and quality flags (no silhouettes are read)."""
    from ragar_data.split import sequence_labels

    from ragar_data.shards import ShardDataset

    keys, labels = sequence_labels(dataset_dir)
    stats = sequence_stats(keys, labels)
    stats["dataset"] = str(dataset_dir)
    table = ShardDataset(dataset_dir).table(["num_frames", "num_silhouettes", "quality_ok", "quality_reasons"])
    stats["frames_per_sequence"] = _spread(table["num_frames"].to_numpy())
    stats["silhouettes_per_sequence"] = _spread(table["num_silhouettes"].to_numpy())
    reasons = Counter(reason for row in table["quality_reasons"].to_pylist() for reason in row)
    ok = int(np.sum(table["quality_ok"].to_numpy(zero_copy_only=False)))
    stats["quality"] = {"ok": ok, "failed": table.num_rows - ok, "reasons": dict(reasons.most_common())}
    return stats


def no_labels_note(stats: dict) -> str | None:
    """One line saying that no sequence carries an attribute label (None when some do)."""
    if stats["sequences"] and stats["unlabelled_sequences"] < stats["sequences"]:
        return None
    return (f"no attribute labels in this dataset: all {stats['sequences']} sequences have labels -1; pass "
            "--annotations CSV to `ragar-data extract` (with --force for sequences already extracted)")


def _spread(values: np.ndarray) -> dict:
    if not len(values):
        return {"min": 0, "max": 0, "mean": 0.0}
    return {"min": int(values.min()), "max": int(values.max()), "mean": float(values.mean())}


def plot_class_distribution(stats: dict, path: str | Path, schema: AttributeSchema | None = None) -> Path:
    """Bar chart PNG: one panel per attribute, sequences per class, coloured by body region.

    A dataset without labels has nothing to draw: that is an error (see `no_labels_note`), not 15 empty panels."""
    note = no_labels_note(stats)
    if note is not None:
        raise RagarDataError(f"{path}: not written, {note}")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from ragar_data.atomic import atomic_write_bytes

    schema = schema or default_schema()
    columns = 5
    rows = -(-len(schema) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    for axis, attribute in zip(axes.flat, schema.attributes):
        counts = [stats["classes"][attribute.name][c] for c in attribute.classes]
        bars = axis.bar(range(attribute.num_classes), counts, color=f"C{REGIONS.index(attribute.region)}")
        axis.bar_label(bars, fontsize=7)
        axis.set_xticks(range(attribute.num_classes), [_wrap(c) for c in attribute.classes], fontsize=7,
                        rotation=30, ha="right")
        axis.set_title(f"{attribute.id} {attribute.name.replace('_', ' ')} ({attribute.region.replace('_', ' ')}, "
                       f"{attribute.kind})", fontsize=9)
        axis.tick_params(axis="y", labelsize=7)
        axis.margins(y=0.15)
    for axis in list(axes.flat)[len(schema):]:
        axis.set_visible(False)
    figure.suptitle(f"Sequences per attribute class ({stats['sequences']} sequences, {stats['subjects']} subjects)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _wrap(name: str, width: int = 14) -> str:
    words, lines, line = name.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])
