"""Attribute annotation CSVs: read, check and write the labels of each (subject, attribute combination).

Format (described in `schemas/annotations.yaml`): a header ``subject,combination,<attribute names>`` with the
attribute names of the attribute schema, then one row per subject x combination; a cell holds a class name
(case-insensitive) or a class index. The column list comes from the attribute schema, never from this module.

Owns parsing, the list of problems (every one, with line and column) and the canonical writer. It does not
own the attribute schema (`ragar_data.attributes`) nor where labels go afterwards (shards, loaders).
"""
from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import yaml

from ragar_data.atomic import atomic_write_bytes
from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import AnnotationError, InputError, RagarDataError
from ragar_data.identity import COMBINATIONS
from ragar_data.schemas import schema_path


def _key_columns() -> tuple[str, ...]:
    document = yaml.safe_load(schema_path("annotations.yaml").read_text())
    return tuple(str(column["name"]) for column in document["key_columns"])


KEY_COLUMNS = _key_columns()  # ("subject", "combination"): the code below refers to them by these names
# Same rule as sequence keys (ragar_data.identity): a subject id is a folder name, kept as a string ("001").
_SUBJECT = re.compile(r"[A-Za-z0-9_]+")  # with fullmatch
# "c1" is accepted beside "1" because the raw video layout names combinations that way. [0-9], not \d: other
# scripts' digits ('١', '１') are not indices.
_COMBINATION = re.compile(r"c?([0-9]+)", re.IGNORECASE)

AnnotationTable = dict[tuple[str, int], np.ndarray]


class TextEncodingError(RagarDataError, ValueError):
    """A CSV file is not UTF-8 text; ``line`` is the 1-based line of the first offending byte."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line, self.reason = line, message


def decode_utf8(data: bytes) -> str:
    """UTF-8 text of a CSV file (a leading byte-order mark is dropped); raises `TextEncodingError` otherwise."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise TextEncodingError(1, "not UTF-8 text: UTF-16 or UTF-32 (byte-order mark); save the file as UTF-8")
    if b"\x00" in data:  # valid UTF-8, but UTF-16 without a byte-order mark reads as text interleaved with NULs
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise TextEncodingError(line, "not UTF-8 text: NUL bytes (UTF-16 without a byte-order mark?); save the "
                                      "file as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise TextEncodingError(line, f"not UTF-8 text: byte 0x{data[error.start]:02x} (Latin-1 or Windows-1252 "
                                      f"text?); save the file as UTF-8") from None
    return text


@dataclass(frozen=True)
class Problem:
    """One problem of an annotation file. ``line`` is 1-based (the header is line 1); 0 = the whole file."""

    line: int
    column: str | None
    message: str
    severity: str = "error"  # "error" or "warning"; only errors make `read_annotations` fail

    def format(self, path: str | Path) -> str:
        where = f"{path}:{self.line}:" if self.line else f"{path}:"
        column = f" column {self.column}:" if self.column else ""
        prefix = " warning:" if self.severity == "warning" else ""
        return f"{where}{prefix}{column} {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def expected_columns(schema: AttributeSchema | None = None) -> tuple[str, ...]:
    """The header of an annotation CSV: the key columns, then the attribute names in schema order."""
    schema = schema or default_schema()
    return KEY_COLUMNS + tuple(schema.names)


def parse_annotations(
    text: str,
    schema: AttributeSchema | None = None,
    known_subjects: Iterable[str] | None = None,
) -> tuple[AnnotationTable, list[Problem]]:
    """Parse CSV text; returns the rows that parsed cleanly and every problem found (nothing raised)."""
    schema = schema or default_schema()
    known = None if known_subjects is None else {str(s) for s in known_subjects}
    problems: list[Problem] = []
    table: AnnotationTable = {}
    first_line_of: dict[tuple[str, int], int] = {}

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        return {}, [Problem(reader.line_num, None, f"malformed CSV header: {error}")]
    if header is None or not any(cell.strip() for cell in header):
        return {}, [Problem(0, None, f"empty file; expected the header {','.join(expected_columns(schema))}")]

    column_of = _check_header(header, schema, problems)
    if any(p.is_error for p in problems if p.line == 1 and p.column in KEY_COLUMNS):
        return {}, problems  # without the key columns no row can be placed

    rows_seen = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            # a quote left open swallows the lines after it: say where the record began and ended
            span = f" (the record runs to line {reader.line_num}; a quote left open?)" if reader.line_num > start else ""
            problems.append(Problem(start, None, f"malformed CSV: {error}{span}"))
            continue
        line = start  # a quoted cell may span lines: report the line the row begins on
        if not any(cell.strip() for cell in row):
            continue  # blank lines carry nothing
        rows_seen += 1
        if len(row) != len(header):
            problems.append(Problem(line, None, f"expected {len(header)} fields as in the header, found {len(row)}"))
            continue
        key = _parse_key(row, column_of, line, known, problems)
        labels = _parse_labels(row, column_of, schema, line, problems)
        if key is None:
            continue
        if key in first_line_of:
            problems.append(Problem(
                line, None,
                f"duplicate row for subject {key[0]!r} combination {key[1]} (first on line {first_line_of[key]})",
            ))
            continue
        first_line_of[key] = line
        if labels is not None:
            table[key] = labels

    if not rows_seen and not any(p.is_error for p in problems):
        problems.append(Problem(0, None, "header only: no annotation rows, every sequence will be unlabelled (-1)",
                                "warning"))
    if known is not None:
        annotated = {subject for subject, _ in first_line_of}
        for subject in sorted(known - annotated):
            problems.append(Problem(0, "subject", f"subject {subject!r} is in the data but has no row", "warning"))
    return table, problems


def _check_header(header: list[str], schema: AttributeSchema, problems: list[Problem]) -> dict[str, int]:
    """Map each expected column to its position; header names match case-insensitively, in any order."""
    expected = expected_columns(schema)
    by_lower = {name.lower(): name for name in expected}
    column_of: dict[str, int] = {}
    for position, cell in enumerate(header):
        name = by_lower.get(cell.strip().lower())
        if name is None:
            label = cell.strip() or f"#{position + 1}"
            problems.append(Problem(1, label, "unexpected column (ignored); expected columns come from the "
                                              "attribute schema", "warning"))
        elif name in column_of:
            problems.append(Problem(1, name, "column appears twice in the header"))
        else:
            column_of[name] = position
    for name in expected:
        if name not in column_of:
            problems.append(Problem(1, name, "missing column"))
    return column_of


def _parse_key(row, column_of, line, known, problems) -> tuple[str, int] | None:
    subject = row[column_of["subject"]].strip()
    combination_text = row[column_of["combination"]].strip()
    key_ok = True
    if not subject:
        problems.append(Problem(line, "subject", "empty cell"))
        key_ok = False
    elif not _SUBJECT.fullmatch(subject):
        problems.append(Problem(line, "subject", f"subject id {subject!r} must be letters, digits or '_'"))
        key_ok = False
    elif known is not None and subject not in known:
        problems.append(Problem(line, "subject", f"subject {subject!r} is not in the data"))
    match = _COMBINATION.fullmatch(combination_text)
    if not combination_text:
        problems.append(Problem(line, "combination", "empty cell"))
        return None
    if not match or int(match[1]) not in COMBINATIONS:
        problems.append(Problem(line, "combination", f"{combination_text!r} is not a combination; expected one of "
                                                     f"{list(COMBINATIONS)} (0 = real gait)"))
        return None
    return (subject, int(match[1])) if key_ok else None


def _parse_labels(row, column_of, schema: AttributeSchema, line, problems) -> np.ndarray | None:
    labels = np.full(len(schema), -1, dtype=np.int8)
    complete = True
    for position, attribute in enumerate(schema.attributes):
        if attribute.name not in column_of:
            complete = False  # reported once, on the header
            continue
        cell = row[column_of[attribute.name]].strip()
        if not cell:
            problems.append(Problem(line, attribute.name, "empty cell"))
            complete = False
            continue
        if cell.isdigit() and not cell.isascii():  # str.isdigit and int() accept '١' and '１' as 1
            problems.append(Problem(line, attribute.name, f"class index {cell!r} has non-ASCII digits; write 0-9"))
            complete = False
            continue
        try:
            labels[position] = attribute.class_index(cell)
        except ValueError as error:
            problems.append(Problem(line, attribute.name, str(error).split(": ", 1)[-1]))
            complete = False
    return labels if complete else None


def _read_text(path: Path) -> tuple[str | None, list[Problem]]:
    try:
        return decode_utf8(path.read_bytes()), []
    except TextEncodingError as error:
        return None, [Problem(error.line, None, error.reason)]
    except OSError as error:
        return None, [Problem(0, None, f"cannot read: {error.strerror or error}")]


def check_annotations(
    path: str | Path, schema: AttributeSchema | None = None, known_subjects: Iterable[str] | None = None
) -> list[Problem]:
    """Every problem of the annotation file at `path` (errors and warnings), in file order."""
    text, problems = _read_text(Path(path))
    if text is None:
        return problems
    return parse_annotations(text, schema, known_subjects)[1]


def read_annotations(
    path: str | Path, schema: AttributeSchema | None = None, known_subjects: Iterable[str] | None = None
) -> AnnotationTable:
    """(subject, combination) -> (15,) int8 class indices; raises `AnnotationError` listing every error.
    Warnings (a header-only file, ignored columns) are issued as Python warnings naming the file."""
    path = Path(path)
    text, problems = _read_text(path)
    table: AnnotationTable = {}
    if text is not None:
        table, problems = parse_annotations(text, schema, known_subjects)
    errors = [p for p in problems if p.is_error]
    if errors:
        listing = "\n".join(p.format(path) for p in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise AnnotationError(f"{path}: {len(errors)} problem(s) in the annotation file:\n{listing}{more}", errors)
    for problem in problems:
        warnings.warn(problem.format(path), stacklevel=2)
    return table


def write_annotations(
    path: str | Path, labels: Mapping[tuple[str, int], np.ndarray], schema: AttributeSchema | None = None
) -> Path:
    """Write the canonical CSV (class names, rows sorted by subject then combination), atomically."""
    schema = schema or default_schema()
    path = Path(path)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(expected_columns(schema))
    for (subject, combination), indices in sorted(labels.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        indices = np.asarray(indices).reshape(-1)
        if indices.shape[0] != len(schema):
            raise InputError(f"labels of ({subject!r}, {combination}): expected {len(schema)} class indices, "
                             f"got {indices.shape[0]}")
        if not _SUBJECT.fullmatch(str(subject)) or int(combination) not in COMBINATIONS:
            raise InputError(f"bad annotation key ({subject!r}, {combination!r})")
        names = []
        for attribute, index in zip(schema.attributes, indices):
            if not 0 <= int(index) < attribute.num_classes:
                raise InputError(f"labels of ({subject!r}, {combination}): {attribute.name} class index "
                                 f"{int(index)} is not a class (0..{attribute.num_classes - 1})")
            names.append(attribute.classes[int(index)])
        writer.writerow([str(subject), int(combination), *names])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path
