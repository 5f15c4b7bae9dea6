"""Evaluate a checkpoint on the test subjects of a dataset: the data layer's metrics overall, per attribute
and per covariate (condition nm/bg/cl, view, real vs simulated combination), written as JSON, Markdown and a
per-attribute bar chart.

Scores: sigmoid scores thresholded at 0.5 for the BCE-trained heads (fusion, classification with BCE); for
the align stage (and a CE classifier) per-attribute softmax probabilities, decided by argmax (metrics mode
"argmax"). Test frames: the central 30 of each sequence by default (the paper's input length), or all frames
in order (capped at ``data.max_eval_frames``) with ``test_frames="all"``; the report says which. Batches
hold sequences of one length only, so nothing is padded and a sequence scores the same in any batch. Sequences
with an unannotated attribute are left out of the metrics (their count is reported); labels with no positive
test sequence are named in a warning (their mA term is capped at TNR / 2).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ragar_data.atomic import atomic_path, atomic_write_json, atomic_write_text
from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import RagarDataError
from ragar_data.training.data import TEST_FRAMES

COVARIATE_TITLES = {"condition": "Condition (nm / bg / cl)", "view": "View (degrees)",
                    "combination": "Attribute combination (real / simulated)"}


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def run_inference(model, stage: str, dataset, batch_size: int, device: torch.device,
                  schema: AttributeSchema, progress: bool = True, num_workers: int = 0) -> dict:
    """Scores (N, 45), metrics mode, keys, one_hot (N, 45) and labels (N, 15) of every item of ``dataset``, in
    the dataset's order. Items are batched by length (`length_batches`) and each forward pass sees sequences of
    one length only, so no frame is padded and an item's score does not depend on the other items."""
    from ragar_data.loaders import collate
    from ragar_data.progress import track
    from ragar_data.training.data import batch_loader, length_batches, sequence_lengths

    lengths = sequence_lengths(dataset)
    batches = (length_batches(lengths, batch_size) if lengths is not None
               else [list(range(start, min(start + batch_size, len(dataset))))
                     for start in range(0, len(dataset), batch_size)])
    model = model.to(device).eval()
    loader = batch_loader(dataset, batches, num_workers, collate)
    # the registered models name their input (silhouettes or keypoints_2d); CLIP-GAR reads silhouettes
    input_field = getattr(model, "input_field", "silhouettes")
    scores, keys, one_hot, labels, mode = [], [], [], [], "sigmoid"
    for batch in track(loader, "inference", unit="batch", enabled=progress):
        batch_scores, mode = _scores_by_length(model, stage, batch[input_field], batch["lengths"], device, schema)
        scores.append(batch_scores)
        keys += list(batch["key"])
        one_hot.append(batch["one_hot"])
        labels.append(batch["labels"])
    dataset_order = np.argsort(np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]), kind="stable")
    return {"scores": torch.cat(scores).numpy()[dataset_order], "mode": mode,
            "keys": [keys[i] for i in dataset_order], "one_hot": torch.cat(one_hot).numpy()[dataset_order],
            "labels": torch.cat(labels).numpy()[dataset_order]}


def _scores_by_length(model, stage: str, inputs: torch.Tensor, lengths: torch.Tensor, device: torch.device,
                      schema: AttributeSchema) -> tuple[torch.Tensor, str]:
    """(B, 45) float32 scores on the CPU, one forward pass per sequence length of the batch, padding cut off."""
    from ragar_data.training.stages import scores_of

    scores, mode = torch.zeros(len(lengths), schema.total_classes), "sigmoid"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    for length in torch.unique(lengths).tolist():
        rows = torch.nonzero(lengths == length).squeeze(1)
        sequences = inputs[rows, :length].to(device)
        if autocast is not None:
            with autocast:
                group_scores, mode = scores_of(model, stage, sequences, lengths[rows].to(device), schema)
        else:
            group_scores, mode = scores_of(model, stage, sequences, lengths[rows].to(device), schema)
        scores[rows] = group_scores.float().cpu()
    return scores, mode


def evaluation_report(scores: np.ndarray, one_hot: np.ndarray, labels: np.ndarray, keys: list[str], mode: str,
                      schema: AttributeSchema | None = None, name: str = "model") -> dict:
    """Headline metrics (percent) overall, per attribute and per covariate value, plus the full metric dicts.
    Warns when some labels have no positive test sequence (listed in ``never_positive_labels``)."""
    from ragar_data.metrics import compute_metrics, headline, metrics_by_subset, never_positive_labels, to_jsonable
    from ragar_data.split import covariate_groups

    schema = schema or default_schema()
    annotated = (np.asarray(labels) >= 0).all(1)
    if not annotated.any():
        raise RagarDataError("no test sequence has all 15 attributes annotated: nothing to evaluate")
    scores, one_hot = np.asarray(scores)[annotated], np.asarray(one_hot)[annotated]
    keys = [k for k, keep in zip(keys, annotated) if keep]
    overall = compute_metrics(scores, one_hot, schema, mode=mode)
    never_positive = never_positive_labels(overall)
    if never_positive:
        warnings.warn(never_positive_note(never_positive, len(scores)), stacklevel=2)
    by_covariate = metrics_by_subset(scores, one_hot, covariate_groups(keys), schema, mode=mode)
    return {
        "name": name, "mode": mode, "num_sequences": int(annotated.sum()),
        "num_left_out_unannotated": int((~annotated).sum()),
        "headline": headline(overall),
        "never_positive_labels": never_positive,
        "per_attribute": {a: {k: 100.0 * v if k != "num_samples" else v for k, v in m.items()}
                          for a, m in overall["per_attribute"].items()},
        "per_covariate": {group: {str(value): dict(headline(m), sequences=m["num_samples"])
                                  for value, m in values.items()}
                          for group, values in by_covariate.items()},
        "metrics": to_jsonable(overall),
    }


def never_positive_note(labels: list[str], sequences: int) -> str:
    return (f"{len(labels)} labels have no positive sample among the {sequences} test sequences "
            f"({', '.join(labels[:5])}{' ...' if len(labels) > 5 else ''}): the mA term of each is capped at "
            "TNR / 2, so mA cannot reach 100")


def markdown_report(report: dict) -> str:
    columns = list(report["headline"])
    lines = [f"# Evaluation: {report['name']}", "",
             f"{report['num_sequences']} test sequences (metrics mode: {report['mode']}; "
             f"{report['num_left_out_unannotated']} unannotated left out)."]
    if "test_frames" in report:
        lines += ["", f"Test frames: {report['test_frames']['description']}."]
    if report.get("never_positive_labels"):
        lines += ["", f"Warning: {never_positive_note(report['never_positive_labels'], report['num_sequences'])}."]
    lines += ["", "F1 is the mean of per-sequence F1, as the paper's tables; the harmonic mean of mean Precision "
              f"and mean Recall is F1_harmonic = {100.0 * report['metrics']['f1_harmonic']:.2f}.", "",
              "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
              "| " + " | ".join(f"{report['headline'][c]:.2f}" for c in columns) + " |", "",
              "## Per attribute", "", "| Attribute | Accuracy | Balanced accuracy |", "|---|---|---|"]
    lines += [f"| {name} | {m['accuracy']:.2f} | {m['balanced_accuracy']:.2f} |"
              for name, m in report["per_attribute"].items()]
    for group, values in report["per_covariate"].items():
        lines += ["", f"## {COVARIATE_TITLES.get(group, group)}", "",
                  "| Value | Sequences | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
        lines += [f"| {value} | {m['sequences']} | " + " | ".join(f"{m[c]:.2f}" for c in columns) + " |"
                  for value, m in values.items()]
    return "\n".join(lines) + "\n"


def plot_per_attribute(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["per_attribute"])
    accuracy = [report["per_attribute"][n]["accuracy"] for n in names]
    balanced = [report["per_attribute"][n]["balanced_accuracy"] for n in names]
    positions = np.arange(len(names))
    figure, axis = plt.subplots(figsize=(12, 4.5))
    axis.bar(positions - 0.2, accuracy, 0.4, label="accuracy")
    axis.bar(positions + 0.2, balanced, 0.4, label="balanced accuracy")
    axis.set_xticks(positions, names, rotation=40, ha="right")
    axis.set_ylabel("%")
    axis.set_ylim(0, 100)
    axis.set_title(f"{report['name']}: per-attribute accuracy (mA {report['headline']['mA']:.2f})")
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


def write_report(report: dict, out_dir: str | Path, stem: str = "evaluation") -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png"}
    atomic_write_json(paths["json"], report, indent=2)
    atomic_write_text(paths["markdown"], markdown_report(report))
    plot_per_attribute(report, paths["plot"])
    return paths


def evaluate_run(checkpoint: str | Path, dataset_dir: str | Path, split: str = "official",
                 test_frames: int | str = TEST_FRAMES, device: str = "auto", batch_size: int | None = None,
                 progress: bool = True) -> dict:
    """The evaluation report of ``checkpoint`` on the test subjects of ``dataset_dir`` (writes nothing).

    ``report["headline"]`` holds the paper's columns in percent (F1, Precision, Recall, Acc, mA);
    ``report["metrics"]`` all of `compute_metrics` as fractions (f1, f1_harmonic, precision, recall, acc, mA,
    par_accuracy, per-label arrays); ``report["test_frames"]`` how each sequence was sampled."""
    from ragar_data.training.build import model_from_checkpoint
    from ragar_data.training.data import (evaluation_frames_record, model_input, parse_test_frames,
                                          resolve_partition, side_keys, silhouette_dataset)

    schema = default_schema()
    test_frames = parse_test_frames(test_frames)
    model, state, config = model_from_checkpoint(checkpoint, schema)
    partition = resolve_partition(dataset_dir, split)
    keys = side_keys(dataset_dir, partition, "test", config.data.quality_ok_only, model_input(config))
    dataset = silhouette_dataset(dataset_dir, keys, config, train=False, test_frames=test_frames)
    outputs = run_inference(model, state["stage"], dataset, batch_size or config.data.eval_batch_size,
                            pick_device(device), schema, progress, config.data.num_workers)
    name = f"{state['kind']}/{state['stage']} @ {state['iteration']} it ({Path(checkpoint).name})"
    report = evaluation_report(outputs["scores"], outputs["one_hot"], outputs["labels"], outputs["keys"],
                               outputs["mode"], schema, name)
    report["test_frames"] = evaluation_frames_record(test_frames, config.data.max_eval_frames)
    report["partition"] = {"protocol": partition.protocol, "train_subjects": len(partition.train),
                           "test_subjects": len(partition.test)}
    return report


def evaluate_checkpoint(checkpoint: str | Path, dataset_dir: str | Path, split: str = "official",
                        out_dir: str | Path | None = None, device: str = "auto", batch_size: int | None = None,
                        progress: bool = True, test_frames: int | str = TEST_FRAMES) -> tuple[dict, dict[str, Path]]:
    """`evaluate_run`, then the report written beside the checkpoint (``<checkpoint dir>/evaluation.{json,md,png}``)
    unless ``out_dir`` is given."""
    report = evaluate_run(checkpoint, dataset_dir, split, test_frames, device, batch_size, progress)
    paths = write_report(report, out_dir if out_dir is not None else Path(checkpoint).parent)
    return report, paths
