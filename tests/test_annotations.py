"""Annotation CSV: round trip, every problem reported with line and column, the `annotations` CLI."""
import numpy as np
import pytest
from click.testing import CliRunner

from ragar_data.annotations import (check_annotations, expected_columns, parse_annotations, read_annotations,
                                    write_annotations)
from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.errors import AnnotationError
from ragar_data.identity import SequenceKey
from ragar_data.shards import make_record, update_index, write_shard

SCHEMA = default_schema()
HEADER = ",".join(expected_columns())


def row(subject, combination, values=None):
    values = values if values is not None else [a.classes[0] for a in SCHEMA.attributes]
    return ",".join([str(subject), str(combination), *map(str, values)])


def problems_of(text, **kwargs):
    return {(p.line, p.column, p.severity): p.message for p in parse_annotations(text, **kwargs)[1]}


def test_header_comes_from_the_attribute_schema():
    assert expected_columns() == ("subject", "combination") + SCHEMA.names
    assert len(expected_columns()) == 17


def test_write_read_round_trip_keeps_subject_strings(tmp_path):
    rng = np.random.default_rng(1)
    table = {(subject, c): np.array([rng.integers(n) for n in SCHEMA.num_classes], np.int8)
             for subject in ("001", "010", "s_7") for c in (0, 1, 2)}
    path = write_annotations(tmp_path / "labels.csv", table)
    text = path.read_text()
    assert text.splitlines()[0] == HEADER
    assert "\n001,0," in text and "010,2" in text
    # class names with spaces are written as names, not indices
    assert SCHEMA["hands"].classes[int(table[("001", 0)][8])] in text.splitlines()[1]
    back = read_annotations(path)
    assert set(back) == set(table)
    for key in table:
        assert back[key].dtype == np.int8
        np.testing.assert_array_equal(back[key], table[key])
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]  # no temporary file left


def test_names_are_case_insensitive_and_indices_accepted():
    values = [a.classes[-1].upper() for a in SCHEMA.attributes]
    values[0] = " 1 "
    text = "\ufeff" + HEADER.upper() + "\n" + row("001", "c2", values) + "\n\n"
    table, problems = parse_annotations(text.lstrip("\ufeff"))
    assert problems == []
    np.testing.assert_array_equal(table[("001", 2)], [n - 1 for n in SCHEMA.num_classes])


def test_every_problem_is_reported_with_line_and_column():
    bad_class = [a.classes[0] for a in SCHEMA.attributes]
    bad_class[1] = "teenager"
    bad_class[4] = "9"
    empty = [a.classes[0] for a in SCHEMA.attributes]
    empty[14] = ""
    lines = [
        HEADER + ",notes",
        row("001", 0),                   # line 2: fine
        row("001", 0),                   # line 3: duplicate of line 2
        row("002", 0, bad_class),        # line 4: unknown class + index out of range
        row("003", 3),                   # line 5: bad combination
        row("004", 1, empty),            # line 6: empty cell
        "005,0,male",                    # line 7: wrong field count
        row("0 6", 0),                   # line 8: bad subject id
    ]
    lines = [line + ",x" if i else line for i, line in enumerate(lines)]
    lines[6] = "005,0,male"
    found = problems_of("\n".join(lines) + "\n")
    assert (1, "notes", "warning") in found
    assert "first on line 2" in found[(3, None, "error")]
    assert "unknown class 'teenager'" in found[(4, "age", "error")]
    assert "out of range" in found[(4, "hair", "error")]
    assert "not a combination" in found[(5, "combination", "error")]
    assert found[(6, "limping", "error")] == "empty cell"
    assert "expected 18 fields" in found[(7, None, "error")]
    assert "letters, digits" in found[(8, "subject", "error")]
    assert len(found) == 8


def test_missing_columns_and_unknown_subjects():
    header = HEADER.replace(",limping", "")
    text = header + "\n" + row("001", 0)[: -len(",walking evenly")] + "\n" + \
        row("009", 0)[: -len(",walking evenly")] + "\n"
    found = problems_of(text, known_subjects=["001", "002"])
    assert found[(1, "limping", "error")] == "missing column"
    assert "not in the data" in found[(3, "subject", "error")]
    assert "has no row" in found[(0, "subject", "warning")]
    # without the key columns nothing can be placed: one problem per missing key column only
    found = problems_of(",".join(SCHEMA.names) + "\n" + ",".join(["0"] * 15) + "\n")
    assert set(found) == {(1, "subject", "error"), (1, "combination", "error")}


def test_malformed_and_empty_files(tmp_path):
    assert "empty file" in check_annotations(_write(tmp_path / "e.csv", ""))[0].message
    path = _write(tmp_path / "q.csv", HEADER + '\n001,0,"male\n')
    problems = check_annotations(path)
    assert problems and "malformed CSV" in problems[0].message and problems[0].line == 2
    # a bad quote mid-file is reported on its line and the rows after it are still read
    text = HEADER + "\n" + row("001", 0).replace(",male", ',"male"x') + "\n" + row("002", 0) + "\n"
    table, problems = parse_annotations(text)
    assert [p.line for p in problems] == [2] and list(table) == [("002", 0)]
    # a quoted cell spanning lines is fine; problems on the row point at its first line
    values = [a.classes[0] for a in SCHEMA.attributes]
    values[0], values[1] = '"ma\nle"', "ancient"
    table, problems = parse_annotations(HEADER + "\n" + row("003", 1, values) + "\n" + row("004", 0) + "\n")
    assert [(p.line, p.column) for p in problems] == [(2, "gender"), (2, "age")] and list(table) == [("004", 0)]
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in check_annotations(binary)[0].message
    assert "cannot read" in check_annotations(tmp_path / "missing.csv")[0].message


def test_read_raises_with_file_count_and_problems(tmp_path):
    path = _write(tmp_path / "bad.csv", HEADER + "\n" + row("001", 5) + "\n" + row("002", 0, ["x"] * 15) + "\n")
    with pytest.raises(AnnotationError) as error:
        read_annotations(path)
    assert str(path) in str(error.value) and "16 problem(s)" in str(error.value)
    assert len(error.value.problems) == 16
    assert {p.line for p in error.value.problems} == {2, 3}


def test_write_refuses_unknown_labels(tmp_path):
    labels = np.zeros(15, np.int8)
    labels[3] = -1
    with pytest.raises(ValueError, match="body_mass class index -1"):
        write_annotations(tmp_path / "x.csv", {("001", 0): labels})
    assert not list(tmp_path.iterdir())


def _write(path, text):
    path.write_text(text)
    return path


def test_cli_check_prints_file_line_column_and_exits_nonzero(tmp_path):
    dataset = tmp_path / "dataset"
    records = [make_record(SequenceKey(s, 0, "nm-01", 0), image_width=8, image_height=8,
                           labels=np.zeros(15, np.int8), frame_index=np.zeros(0, np.int32),
                           boxes=np.zeros((0, 4), np.float32), silhouette_frame_index=np.zeros(0, np.int32))
               for s in ("001", "002")]
    update_index(dataset, [write_shard(dataset, "part-000", records)])
    good = _write(tmp_path / "good.csv", HEADER + "\n" + row("001", 0) + "\n" + row("002", 0) + "\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["annotations", "check", str(good), "--dataset", str(dataset)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output

    bad = _write(tmp_path / "bad.csv", HEADER + "\n" + row("001", 0, ["tall"] + ["0"] * 14) + "\n" +
                 row("007", 0) + "\n")
    result = runner.invoke(cli, ["annotations", "check", str(bad), "--dataset", str(dataset)])
    assert result.exit_code == 1
    assert f"{bad}:2: column gender: unknown class 'tall'" in result.output
    assert f"{bad}:3: column subject: subject '007' is not in the data" in result.output
    assert f"{bad}: warning: column subject: subject '002' is in the data but has no row" in result.output

    out = tmp_path / "canonical.csv"
    result = runner.invoke(cli, ["annotations", "convert", str(good), str(out)])
    assert result.exit_code == 0 and out.read_text() == good.read_text()
    result = runner.invoke(cli, ["annotations", "convert", str(bad), str(out)])
    assert result.exit_code != 0 and "1 problem(s)" in result.output
