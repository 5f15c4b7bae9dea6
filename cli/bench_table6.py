"""`ragar-data benchmark table6`: the paper's Table 6, the number of horizontal parts p of the visual encoder
(``model.parts``) for the CLIP-GAR align stage and align + fusion.

Each p trains in its own run (``<out>/train/p<p>/``) with one config (``--config``, default table5_cpu) and
is evaluated on the test subjects; rows resume as Table 5's (`ragar_data.cli.bench_table5`). Writes
``table6.{md,json,png}`` and ``table6-covariates.md``. The paper's values are printed for p = 8, its default
(the align row and CLIP-GAR's headline of Table 5).
"""
from __future__ import annotations

from pathlib import Path

import click

from ragar_data.cli.bench_table5 import ALIGN, COLUMNS, FUSION, PAPER, evaluated_row, load_table_config, write_table
from ragar_data.cli.common import dataset_option, resolve_dataset

PARTS = (16, 8, 4, 1)
PAPER_PARTS = 8  # the paper's setting; its Table 5 rows are Table 6's p = 8 rows


def row_name(stage: str, parts: int) -> str:
    return f"{stage}, p={parts}"


def run_table6(dataset: Path, out: Path, config_name: str, parts=PARTS, overrides=(), log=print) -> dict:
    """Align and align + fusion for each p in ``parts``; writes the table; returns the rows."""
    from ragar_data.paper_tables import PaperTable
    from ragar_data.training.stages import train_clipgar

    paper = {row_name(stage, PAPER_PARTS): PAPER[stage] for stage in (ALIGN, FUSION)}
    table = PaperTable("table6", "Table 6: number of parts p", COLUMNS, paper, out)
    results = {}
    for p in parts:
        config = load_table_config(config_name, dataset, out, [*overrides, f"model.parts={p}"], f"train/p{p}")
        for stage, name in ((ALIGN, "align"), (FUSION, "fusion")):
            def train(name=name, config=config):
                return train_clipgar(config, stages=(name,))[name].checkpoint

            results[row_name(stage, p)] = table.run_row(row_name(stage, p),
                                                        lambda train=train, config=config: evaluated_row(train, config),
                                                        log)
    write_table(table, results, {"config": config_name, "overrides": list(overrides), "parts": list(parts)}, log)
    return results


@click.command("table6")
@dataset_option
@click.option("--config", "config_name", default="table5_cpu", show_default=True,
              help="Training config of every run (a name in ragar_data/training/configs or a YAML path).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/table6"),
              show_default=True, help="Output folder; a rerun resumes it row by row.")
@click.option("--parts", "parts", multiple=True, type=click.Choice([str(p) for p in PARTS]),
              help="The values of p to run (repeatable) [default: 16, 8, 4, 1].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override for every run.")
def table6(dataset, config_name, out, parts, overrides):
    """Table 6: p in {16, 8, 4, 1} for the align and fusion stages."""
    run_table6(resolve_dataset(dataset), out, config_name, tuple(int(p) for p in parts) or PARTS, overrides)
