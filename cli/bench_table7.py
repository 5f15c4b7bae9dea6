"""`ragar-data benchmark table7`: identity recognition with and without attributes (the paper's Table 7).

One row per model (GaitSet, GaitPart, GaitGL, GaitBase, DeepGaitV2-P3D): train it on the protocol's training
subjects (`ragar_data.recognition`), then Rank-1 and mAP of the probes against the gallery, without and with
the annotated attributes, per probe condition and view. Rows resume (`ragar_data.paper_tables`); a model whose
checkpoint is there but whose row is not (interrupted during evaluation) is evaluated without training again.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from ragar_data.cli.common import dataset_option, resolve_dataset

COLUMNS = ("Rank-1", "mAP", "Rank-1 w/ attr", "mAP w/ attr")
# The paper's Table 7 values known here: GaitBase 86.14 -> 99.54 Rank-1 (others: unknown, shown as '—')
PAPER = {"GaitBase": {"Rank-1": 86.14, "Rank-1 w/ attr": 99.54}}


def _row_result(report: dict, seconds: float, checkpoint: Path) -> dict:
    without, with_attribute = report["without_attribute"], report["with_attribute"]
    metrics = {"Rank-1": without["overall"]["Rank-1"], "mAP": without["overall"]["mAP"],
               "Rank-1 w/ attr": with_attribute["overall"]["Rank-1"], "mAP w/ attr": with_attribute["overall"]["mAP"]}
    breakdown = {group: {"Rank-1": scores["Rank-1"], "mAP": scores["mAP"],
                         "Rank-1 w/ attr": with_attribute["breakdown"][group]["Rank-1"],
                         "mAP w/ attr": with_attribute["breakdown"][group]["mAP"], "probes": scores["probes"]}
                 for group, scores in without["breakdown"].items()}
    return {"metrics": metrics, "breakdown": breakdown, "seconds": round(seconds, 1), "checkpoint": str(checkpoint),
            "attribute_scale": report["attribute_scale"], "gallery": report["gallery"], "probes": report["probes"]}


@click.command(name="table7", short_help="Table 7: identity recognition with and without attributes.")
@dataset_option
@click.option("--out", type=click.Path(file_okay=False), default="runs/table7", show_default=True)
@click.option("--models", default="gaitset,gaitpart,gaitgl,gaitbase,deepgaitv2_p3d", show_default=True,
              help="Comma-separated models (rows).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--train-subjects", type=int, help="Training subjects [default: 100, or 100/533 of a smaller set].")
@click.option("--iterations", type=int, default=300, show_default=True, help="Per model (upstream: 60,000-80,000).")
@click.option("--identities", "-p", type=int, default=8, show_default=True, help="P: identities per batch.")
@click.option("--per-identity", "-k", type=int, default=4, show_default=True, help="K: sequences per identity.")
@click.option("--frames", type=int, default=30, show_default=True, help="Frames per training sequence.")
@click.option("--channel-divisor", type=click.Choice(["1", "2", "4", "8"]), default="1", show_default=True,
              help="Divide GaitBase's and DeepGaitV2-P3D's channels (512 -> 512/N) to fit a CPU; others keep theirs.")
@click.option("--eval-frames", type=int, default=720, show_default=True,
              help="Frames per test sequence, from its start (upstream: all, capped at 720).")
@click.option("--device", default="cpu", show_default=True)
def table7(dataset, out, models, seed, train_subjects, iterations, identities, per_identity, frames, channel_divisor,
           eval_frames, device):
    """Train and evaluate the five identity models on the Table 7 protocol; write OUT/table7.{md,json,png}."""
    from ragar_data.atomic import atomic_write_text
    from ragar_data.errors import InputError
    from ragar_data.paper_tables import PaperTable, breakdown_markdown
    from ragar_data.recognition.heads import IDENTITY_SETUPS, PAPER_NAMES
    from ragar_data.recognition.protocol import protocol_for
    from ragar_data.recognition.training import (ATTRIBUTE_SCALING, IdentityTrainConfig, evaluate_identity,
                                                 load_identity_model, trained_checkpoint)

    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in IDENTITY_SETUPS]
    if unknown:
        raise InputError(f"--models: {', '.join(unknown)} not among Table 7's models ({', '.join(IDENTITY_SETUPS)})")
    dataset, out = resolve_dataset(dataset), Path(out)
    protocol = protocol_for(dataset, out / "protocol.json", seed, train_subjects)
    click.echo(f"table7: {len(protocol.train_subjects)} training subjects ({protocol.train_rule}), "
               f"{len(protocol.test_subjects)} test subjects, {len(protocol.probe_keys())} probes; protocol "
               f"{out / 'protocol.json'}")
    table = PaperTable("table7", "Table 7: identity recognition without and with attributes", COLUMNS, PAPER, out)
    results = {}
    for name in names:
        config = IdentityTrainConfig(model=name, iterations=iterations, identities=identities,
                                     per_identity=per_identity, frames=frames, seed=seed, device=device,
                                     channel_divisor=int(channel_divisor))

        def compute(config=config):
            started = time.perf_counter()
            checkpoint = trained_checkpoint(dataset, protocol, config, out / "models" / f"{config.model}.pt",
                                            log=click.echo)
            model, _ = load_identity_model(checkpoint)
            report = evaluate_identity(model, dataset, protocol, eval_frames)
            return _row_result(report, time.perf_counter() - started, checkpoint)

        row = PAPER_NAMES[name]
        results[row] = table.run_row(row, compute, log=click.echo)
        click.echo(f"table7: {row}: " + ", ".join(f"{c} {results[row]['metrics'][c]:.2f}" for c in COLUMNS))
    schedule = {"iterations": iterations, "P": identities, "K": per_identity, "frames": frames, "seed": seed,
                "channel_divisor": int(channel_divisor), "eval_frames": eval_frames}
    paths = table.write(results, extra={"protocol": str(out / "protocol.json"), "train_rule": protocol.train_rule,
                                        "schedule": schedule, "attribute_scaling": ATTRIBUTE_SCALING})
    breakdown = {row: result["breakdown"] for row, result in results.items()}
    text = (table.markdown(results) + "\n" + "".join(f"#### {column} by probe condition and view\n\n"
                                                     + breakdown_markdown(breakdown, column) + "\n"
                                                     for column in COLUMNS)
            + f"Schedule: {schedule}; training subjects: {protocol.train_rule}. With attribute: "
              f"{ATTRIBUTE_SCALING}.\n")
    atomic_write_text(paths["md"], text)
    click.echo(text)
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))
