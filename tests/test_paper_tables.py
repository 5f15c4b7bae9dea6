"""The shared benchmark-table frame: rows resume, the paper's values sit beside ours, md/json/PNG are written."""
import json

import pytest

from ragar_data.errors import InputError
from ragar_data.paper_tables import PaperTable, breakdown_markdown, slug


def _table(tmp_path):
    return PaperTable("table9", "Table 9 (test)", ["F1", "mA"], paper={"Model A": {"F1": 70.0, "mA": 60.0}},
                      out_dir=tmp_path)


def test_a_finished_row_is_not_computed_again(tmp_path):
    table = _table(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"metrics": {"F1": 50.0, "mA": 40.0}, "seconds": 1.5}

    first = table.run_row("Model A", compute, log=lambda _: None)
    again = _table(tmp_path).run_row("Model A", compute, log=lambda _: None)
    assert calls == [1]
    assert first == again and again["seconds"] == 1.5


def test_a_row_missing_a_column_is_refused_and_not_stored(tmp_path):
    table = _table(tmp_path)
    with pytest.raises(InputError, match="computed no mA"):
        table.run_row("Model B", lambda: {"metrics": {"F1": 1.0}}, log=lambda _: None)
    assert table.finished("Model B") is None


def test_a_row_file_of_another_row_is_an_error_naming_the_file(tmp_path):
    table = _table(tmp_path)
    table.row_path("Model A").parent.mkdir(parents=True)
    table.row_path("Model A").write_text(json.dumps({"row": "other", "metrics": {}}))
    with pytest.raises(InputError, match="model-a.json"):
        table.finished("Model A")


def test_written_table_puts_the_paper_beside_ours(tmp_path):
    table = _table(tmp_path)
    results = {"Model A": {"metrics": {"F1": 50.0, "mA": 40.0}}, "Model B": {"metrics": {"F1": 30.0, "mA": 20.0}}}
    paths = table.write(results)
    text = paths["md"].read_text()
    assert "| Model A | 50.00 (70.00) | 40.00 (60.00) |" in text
    assert "| Model B | 30.00 (—) | 20.00 (—) |" in text
    assert json.loads(paths["json"].read_text())["paper"]["Model A"]["F1"] == 70.0
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_slug_and_breakdown():
    assert slug("DeepGaitV2-3D (ours)") == "deepgaitv2-3d-ours"
    with pytest.raises(InputError):
        slug("--")
    text = breakdown_markdown({"M": {"condition=nm": {"F1": 1.0}}, "N": {"view=0": {"F1": 2.0}}}, "F1")
    assert "| M | 1.00 | — |" in text and "| N | — | 2.00 |" in text
