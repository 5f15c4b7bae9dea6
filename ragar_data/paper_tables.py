"""One shape for every `ragar-data benchmark tableN`: rows that resume, the paper's numbers beside ours, md/json/PNG.

A table is a list of rows (one model or setting each). Each finished row is written at once to
``<out>/rows/<slug>.json`` (atomically), so a rerun of the same command skips it and an interrupted run loses at
most the row in progress. When every row is there, ``write`` renders ``<out>/<table>.md``, ``.json`` and ``.png``.

Owns: the row files, the rendering, the per-covariate breakdown layout. Does not own: training or evaluation
(each table's module in ``ragar_data/cli/bench_*.py`` does that) nor the metrics (``ragar_data.metrics``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragar_data.atomic import atomic_path, atomic_write_json, atomic_write_text
from ragar_data.errors import InputError

ROW_DIR = "rows"


def slug(name: str) -> str:
    """A file-name-safe form of a row name: 'DeepGaitV2-3D (ours)' -> 'deepgaitv2-3d-ours'."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not text:
        raise InputError(f"row name {name!r} has no letters or digits to name its file")
    return text


@dataclass
class PaperTable:
    """A benchmark table: its name, its metric columns and the paper's published values (None where unknown)."""

    name: str  # e.g. "table3"
    title: str
    columns: Sequence[str]
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # row -> column -> value
    out_dir: Path = Path("runs")

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)

    def row_path(self, row: str) -> Path:
        return self.out_dir / ROW_DIR / f"{slug(row)}.json"

    def finished(self, row: str) -> dict | None:
        """The stored result of a row finished earlier, or None."""
        path = self.row_path(row)
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: not a readable row result ({error}); delete it to rerun that row") from None
        if stored.get("row") != row or not isinstance(stored.get("metrics"), dict):
            raise InputError(f"{path}: holds row {stored.get('row')!r}, not {row!r}; delete it to rerun that row")
        return stored

    def run_row(self, row: str, compute: Callable[[], dict], log: Callable[[str], None] = print) -> dict:
        """The row's result, computed now or read back when a previous run finished it.

        ``compute`` returns {"metrics": {column: value}, ...}; other keys (e.g. "breakdown", "seconds", "notes")
        are kept as given.
        """
        stored = self.finished(row)
        if stored is not None:
            log(f"{self.name}: {row}: done earlier ({self.row_path(row)}), skipped")
            return stored
        result = dict(compute())
        missing = [c for c in self.columns if c not in result.get("metrics", {})]
        if missing:
            raise InputError(f"{self.name}: row {row!r} computed no {', '.join(missing)}")
        result["row"] = row
        atomic_write_json(self.row_path(row), result)
        return result

    def markdown(self, results: Mapping[str, dict]) -> str:
        """Our value, then the paper's in brackets where it is known ('—' where the paper has none)."""
        header = "| Method | " + " | ".join(f"{c} ours (paper)" for c in self.columns) + " |"
        lines = [f"### {self.title}", "", header, "|---|" + "---|" * len(self.columns)]
        for row, result in results.items():
            paper = self.paper.get(row, {})
            cells = [f"{result['metrics'][c]:.2f} ({paper[c]:.2f})" if c in paper
                     else f"{result['metrics'][c]:.2f} (—)" for c in self.columns]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, results: Mapping[str, dict], path: Path, column: str | None = None) -> None:
        """Bar chart of one column (the first by default): ours beside the paper's where known."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        column = column or self.columns[0]
        rows = list(results)
        ours = [results[r]["metrics"][column] for r in rows]
        paper = [self.paper.get(r, {}).get(column, float("nan")) for r in rows]
        figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 2), 4))
        positions = range(len(rows))
        axis.bar([p - 0.2 for p in positions], ours, width=0.4, label="ours")
        axis.bar([p + 0.2 for p in positions], paper, width=0.4, label="paper")
        axis.set_xticks(list(positions), rows, rotation=30, ha="right")
        axis.set_ylabel(column)
        axis.set_title(self.title)
        axis.legend()
        figure.tight_layout()
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
        plt.close(figure)

    def write(self, results: Mapping[str, dict], extra: Mapping | None = None,
              more_markdown: str = "") -> dict[str, Path]:
        """Write <out>/<name>.md (the table, then ``more_markdown``, e.g. breakdowns), .json (with ``extra``) and
        .png; return their paths."""
        paths = {suffix: self.out_dir / f"{self.name}.{suffix}" for suffix in ("md", "json", "png")}
        atomic_write_text(paths["md"], self.markdown(results) + more_markdown)
        atomic_write_json(paths["json"], {"table": self.name, "title": self.title, "columns": list(self.columns),
                                          "rows": dict(results), "paper": {k: dict(v) for k, v in self.paper.items()},
                                          **(dict(extra) if extra else {})})
        self.plot(results, paths["png"])
        return paths


def breakdown_markdown(breakdown: Mapping[str, Mapping[str, Mapping[str, float]]], column: str) -> str:
    """One column of a per-covariate breakdown ({row: {"condition=nm": {column: value}, ...}}) as a table."""
    groups = sorted({group for per_row in breakdown.values() for group in per_row})
    lines = ["| Method | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for row, per_row in breakdown.items():
        cells = [f"{per_row[g][column]:.2f}" if g in per_row else "—" for g in groups]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
