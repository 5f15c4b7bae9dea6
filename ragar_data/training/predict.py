"""Per-sequence attribute predictions of a checkpoint, written to Parquet (atomically).

One row per sequence: ``key, subject, combination, condition, view``, then for each attribute its predicted
class name (column = attribute name) and class index (``<attribute>_index``), then the 45 scores
(``score__<attribute>__<class>``, float32, in schema one-hot order). The predicted class is the argmax of the
attribute's scores (sigmoid scores for BCE heads, softmax probabilities for the align stage). All sequences of
the dataset are predicted, whatever their side of the split; labels are not needed. Frames and batching are
evaluation's: the central 30 frames by default, or all (``test_frames="all"``), in batches of one length; the
file's schema metadata says which (``ragar_data.test_frames``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ragar_data.atomic import atomic_write_parquet
from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.training.data import TEST_FRAMES


def score_column(attribute: str, class_name: str) -> str:
    return f"score__{attribute}__{class_name}".replace(" ", "_")


def predictions_table(keys: list[str], scores: np.ndarray, schema: AttributeSchema) -> pa.Table:
    parsed = [SequenceKey.parse(k) for k in keys]
    classes = schema.from_scores(scores)
    columns = {
        "key": pa.array(keys, pa.string()),
        "subject": pa.array([k.subject for k in parsed], pa.string()),
        "combination": pa.array([k.combination for k in parsed], pa.int8()),
        "condition": pa.array([k.condition for k in parsed], pa.string()),
        "view": pa.array([k.view for k in parsed], pa.int16()),
    }
    for m, attribute in enumerate(schema.attributes):
        names = np.asarray(attribute.classes, dtype=object)[classes[:, m]]
        columns[attribute.name] = pa.array(names.tolist(), pa.string())
        columns[f"{attribute.name}_index"] = pa.array(classes[:, m].astype(np.int8), pa.int8())
    for j, (attribute_index, class_name) in enumerate(
        (a, c) for a, attribute in enumerate(schema.attributes) for c in attribute.classes
    ):
        columns[score_column(schema.attributes[attribute_index].name, class_name)] = pa.array(
            scores[:, j].astype(np.float32), pa.float32()
        )
    return pa.table(columns)


def predict_checkpoint(checkpoint: str | Path, dataset_dir: str | Path, out: str | Path, device: str = "auto",
                       batch_size: int | None = None, progress: bool = True,
                       test_frames: int | str = TEST_FRAMES) -> tuple[Path, int]:
    """Predict every sequence of ``dataset_dir`` with ``checkpoint``; returns (parquet path, rows)."""
    from ragar_data.training.build import model_from_checkpoint
    from ragar_data.training.data import (evaluation_frames_record, model_input, parse_test_frames,
                                          silhouette_dataset, usable_keys)
    from ragar_data.training.evaluate import pick_device, run_inference

    schema = default_schema()
    test_frames = parse_test_frames(test_frames)
    model, state, config = model_from_checkpoint(checkpoint, schema)
    keys = usable_keys(dataset_dir, model_input(config))
    if not keys:
        raise RagarDataError(f"{dataset_dir}: no sequence has silhouettes to predict from")
    dataset = silhouette_dataset(dataset_dir, keys, config, train=False, test_frames=test_frames)
    outputs = run_inference(model, state["stage"], dataset, batch_size or config.data.eval_batch_size,
                            pick_device(device), schema, progress, config.data.num_workers)
    table = predictions_table(outputs["keys"], outputs["scores"], schema)
    table = table.replace_schema_metadata({
        "ragar_data.checkpoint": str(checkpoint), "ragar_data.stage": state["stage"],
        "ragar_data.iteration": str(state["iteration"]), "ragar_data.metrics_mode": outputs["mode"],
        "ragar_data.test_frames": evaluation_frames_record(test_frames, config.data.max_eval_frames)["description"],
    })
    out = Path(out)
    atomic_write_parquet(out, table, compression="zstd")
    return out, table.num_rows
