"""`ragar-data benchmark tableN`: rerun one of the paper's tables with one command.

Each table lives in its own module, ``ragar_data/cli/bench_<table>.py``, holding one click command of that
name; this group imports it only when it runs. Every table resumes per row and writes md, json and a PNG
(`ragar_data.paper_tables`).
"""
from __future__ import annotations

import importlib
import importlib.util

import click

# table -> one-line help. The module ragar_data.cli.bench_<table> holds a click command named <table>.
TABLES = {
    "table3": "Table 3: the twelve baselines and CLIP-GAR as attribute recognisers.",
    "table5": "Table 5: CLIP visual encoders (zero-shot, fine-tuned), classification, align, fusion.",
    "table6": "Table 6: the number of parts p in {16, 8, 4, 1} for the align and fusion stages.",
    "table7": "Table 7: identity recognition (Rank-1, mAP) with and without attributes.",
}


def _module_name(table: str) -> str:
    return f"ragar_data.cli.bench_{table}"


def available_tables() -> list[str]:
    return [t for t in TABLES if importlib.util.find_spec(_module_name(t)) is not None]


class TableGroup(click.Group):
    def list_commands(self, ctx):
        return available_tables()

    def get_command(self, ctx, name):
        if name not in available_tables():
            return None
        return getattr(importlib.import_module(_module_name(name)), name)

    def format_commands(self, ctx, formatter):
        rows = [(t, TABLES[t]) for t in available_tables()]
        if rows:  # click's definition list refuses an empty list
            with formatter.section("Tables"):
                formatter.write_dl(rows)


@click.group(cls=TableGroup)
def benchmark():
    """Rerun the paper's tables on a dataset; each resumes per row and writes md, json and PNG."""
