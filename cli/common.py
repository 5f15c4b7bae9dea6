"""What every command shares: naming the dataset (`--dataset/-d`, with a default) and the exit codes.

Owns: where a command's dataset comes from, the deprecation note of the old positional spellings, and which
exceptions become a one-line `error: ...` instead of a traceback. Does not own: what a dataset contains
(`ragar_data.shards`), nor any command's work.
"""
from __future__ import annotations

from pathlib import Path

import click

from ragar_data.errors import RagarDataError

DEFAULT_DATASET = "dataset"  # `ragar-data extract` writes ./dataset by default

# One exit status per kind of outcome, the same for every command (documented in `ragar-data --help`).
EXIT_ERROR = 1  # a data or runtime error: the message is printed as "error: ..." on stderr
EXIT_USAGE = 2  # a wrong option or argument (click's own code for usage errors)
EXIT_SOME_FAILED = 3  # `extract` finished, but some sequences failed (listed in DATASET/extract/failures.jsonl)

# Errors a user can fix: shown as one line. OSError covers missing and unreadable files; ValueError covers the
# library's checks that are not yet `RagarDataError`s (bad override values, malformed manifests).
USER_ERRORS = (RagarDataError, OSError, ValueError)

EXIT_CODES_EPILOG = (
    f"Exit status: 0 success; {EXIT_ERROR} error (one line 'error: ...' on stderr); {EXIT_USAGE} wrong usage; "
    f"{EXIT_SOME_FAILED} extract finished but some sequences failed (DATASET/extract/failures.jsonl).")

DATASET_HELP = ("Dataset folder (index.json + shards/) [default: ./dataset, or the current folder when it is "
                "a dataset].")


class NoDatasetError(RagarDataError):
    """No dataset was named and none is where the default looks."""


def is_dataset(folder: Path) -> bool:
    from ragar_data.shards import INDEX_NAME, SHARD_DIR

    return (folder / INDEX_NAME).is_file() and (folder / SHARD_DIR).is_dir()


def default_dataset(cwd: Path | None = None) -> Path:
    """./dataset when it is a dataset, else the current folder when it is one, else ./dataset if it exists."""
    cwd = Path.cwd() if cwd is None else cwd
    candidate = cwd / DEFAULT_DATASET
    if is_dataset(candidate):
        return Path(DEFAULT_DATASET)
    if is_dataset(cwd):
        return Path(".")
    if candidate.is_dir():  # an unfinished extraction: the library names what is missing
        return Path(DEFAULT_DATASET)
    raise NoDatasetError(f"no dataset at ./{DEFAULT_DATASET} (and the current folder is not one): pass --dataset "
                         "DIR or run `ragar-data extract` first")


def deprecated_positional(name: str, value: str, replacement: str) -> None:
    click.echo(f"note: the positional {name} is deprecated and will be removed in the next release; use "
               f"{replacement} {value}", err=True)


def resolve_dataset(option: str | None, positional: str | None = None, positional_name: str = "DATASET") -> Path:
    """The dataset a command works on: --dataset, else the deprecated positional, else `default_dataset()`."""
    if positional is not None:
        if option is not None and Path(option) != Path(positional):
            raise click.UsageError(f"the dataset is given twice: --dataset {option} and {positional_name} "
                                   f"{positional}; keep --dataset")
        deprecated_positional(positional_name, positional, "--dataset")
        option = positional
    if option is None:
        return default_dataset()
    folder = Path(option)
    if not folder.is_dir():
        raise NoDatasetError(f"{folder}: no such dataset folder")
    return folder


def dataset_option(function):
    """The `--dataset/-d DIR` option (None when not given: pass it to `resolve_dataset`)."""
    return click.option("--dataset", "-d", "dataset", type=click.Path(file_okay=False), default=None,
                        help=DATASET_HELP)(function)


def legacy_dataset_argument(function):
    """The old positional DATASET, optional now: still accepted with a deprecation note."""
    return click.argument("legacy_dataset", required=False, metavar="[DATASET]",
                          type=click.Path(file_okay=False))(function)


def split_legacy_pair(values: tuple[str, ...], name: str, legacy_name: str) -> tuple[str | None, str]:
    """`(NAME)` or the old `(DATASET NAME)` of commands whose dataset was their first positional argument."""
    if len(values) == 1:
        return None, values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise click.UsageError(f"expected {name} (and --dataset DIR); the old form was {legacy_name} {name}")
