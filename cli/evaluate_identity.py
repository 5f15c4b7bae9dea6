"""`ragar-data evaluate identity CHECKPOINT`: Rank-1 and mAP of an identity checkpoint (Table 7), both columns.

`evaluate` keeps its checkpoint form (`ragar-data evaluate CHECKPOINT`); `with_identity` routes the first word
"identity" to this command instead.
"""
from __future__ import annotations

from pathlib import Path

import click

from ragar_data.cli.common import dataset_option, resolve_dataset


def identity_markdown(report: dict, name: str) -> str:
    """Both columns of one model, then the per-covariate breakdown."""
    without, with_attribute = report["without_attribute"], report["with_attribute"]
    lines = [f"| Model | Rank-1 | mAP | Rank-1 w/ attr | mAP w/ attr |", "|---|---|---|---|---|",
             f"| {name} | {without['overall']['Rank-1']:.2f} | {without['overall']['mAP']:.2f} | "
             f"{with_attribute['overall']['Rank-1']:.2f} | {with_attribute['overall']['mAP']:.2f} |", "",
             "| Probes | Rank-1 | mAP | Rank-1 w/ attr | mAP w/ attr |", "|---|---|---|---|---|"]
    for group, scores in without["breakdown"].items():
        other = with_attribute["breakdown"][group]
        lines.append(f"| {group} ({scores['probes']}) | {scores['Rank-1']:.2f} | {scores['mAP']:.2f} | "
                     f"{other['Rank-1']:.2f} | {other['mAP']:.2f} |")
    lines += ["", f"{report['probes']} probes against {report['gallery']} gallery sequences. With attribute: "
              f"{report['attribute_scaling']} (s = {report['attribute_scale']:.4f})."]
    return "\n".join(lines) + "\n"


@click.command(name="identity", short_help="Evaluate an identity checkpoint: Rank-1 and mAP, with and without attributes.")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@dataset_option
@click.option("--protocol", "protocol_path", type=click.Path(dir_okay=False, exists=True),
              help="Protocol JSON [default: protocol.json beside the checkpoint, as `train identity` writes it].")
@click.option("--out", type=click.Path(file_okay=False), help="Report folder [default: the checkpoint's folder].")
@click.option("--eval-frames", type=int, default=720, show_default=True,
              help="Frames per test sequence, from its start (upstream: all, capped at 720).")
def identity(checkpoint, dataset, protocol_path, out, eval_frames):
    """Evaluate CHECKPOINT (from `ragar-data train identity`) on its protocol's gallery and probes; print Rank-1
    and mAP without and with the annotated attributes, and write identity_<model>.{json,md}."""
    from ragar_data.atomic import atomic_write_json, atomic_write_text
    from ragar_data.recognition.heads import PAPER_NAMES
    from ragar_data.recognition.protocol import read_protocol
    from ragar_data.recognition.training import check_protocol_matches, evaluate_identity, load_identity_model

    checkpoint = Path(checkpoint)
    protocol_path = Path(protocol_path) if protocol_path else checkpoint.parent / "protocol.json"
    protocol = read_protocol(protocol_path)
    model, stored = load_identity_model(checkpoint)
    check_protocol_matches(stored, protocol, checkpoint, protocol_path)
    report = evaluate_identity(model, resolve_dataset(dataset), protocol, eval_frames)
    name = stored["config"]["model"]
    text = identity_markdown(report, PAPER_NAMES.get(name, name))
    out = Path(out) if out else checkpoint.parent
    atomic_write_json(out / f"identity_{name}.json", report)
    atomic_write_text(out / f"identity_{name}.md", text)
    click.echo(text)
    click.echo(f"wrote {out / f'identity_{name}.json'}, {out / f'identity_{name}.md'}")


class _CheckpointOrIdentity(click.Command):
    """`evaluate CHECKPOINT ...` as before; `evaluate identity ...` runs `identity`."""

    def __init__(self, checkpoint_command: click.Command):
        super().__init__(name=checkpoint_command.name, short_help=checkpoint_command.short_help)
        self.checkpoint_command = checkpoint_command

    def make_context(self, info_name, args, parent=None, **extra):
        if args and args[0] == "identity":
            return identity.make_context("identity", list(args[1:]), parent=parent, **extra)
        return self.checkpoint_command.make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        return ctx.command.invoke(ctx)


def with_identity(checkpoint_command: click.Command) -> click.Command:
    checkpoint_command.epilog = ((checkpoint_command.epilog or "") + " Identity recognition (Table 7): "
                                 "`ragar-data evaluate identity CHECKPOINT` (see its --help).").strip()
    return _CheckpointOrIdentity(checkpoint_command)
