"""Where an extraction run keeps its state inside the dataset folder, and the readers of that state.

Run folder (the output dataset folder, OUT):

    OUT/index.json, OUT/shards/part-*.parquet    the dataset (ragar_data.shards), assembled at the end
    OUT/extract/run.json                         preset, config hash, source, inputs of the last run, the shard
                                                 files extract runs wrote here (the only ones a run removes)
    OUT/extract/lock                             held while a run writes the folder (a second run refuses)
    OUT/extract/failures.jsonl                   one line per failed sequence: sequence, video, stage, error
    OUT/extract/<hash>/parts/<key>.parquet       one finished sequence (one-row shard, with its source identity
                                                 in the metadata), written atomically
    OUT/extract/<hash>/tracks/<key>.npz          every track of the clip (QA: identity switches)
    OUT/extract/<hash>/masks/<key>.npz           the subject's full-resolution masks (`keep_masks`; QA, viz)
    OUT/extract/<hash>/backgrounds/<view>.npz    per-camera background plates (`plates`), computed once per run

The extraction runner (`ragar_data.pipelines.runner`) writes this layout; qa and viz read it.
Does not own: running the extraction or writing the files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ragar_data.subject_masks import SubjectMasks

RUN_FOLDER = "extract"


class RunFolder:
    def __init__(self, out_dir: Path, config_hash: str):
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / RUN_FOLDER
        self.hash_dir = self.root / config_hash
        self.failures = self.root / "failures.jsonl"
        self.run_json = self.root / "run.json"

    def part(self, key: str) -> Path:
        return self.hash_dir / "parts" / f"{key}.parquet"

    def tracks(self, key: str) -> Path:
        return self.hash_dir / "tracks" / f"{key}.npz"

    def masks(self, key: str) -> Path:
        return self.hash_dir / "masks" / f"{key}.npz"

    def done(self, key: str, keep_masks: bool) -> bool:
        return self.part(key).is_file() and (not keep_masks or self.masks(key).is_file())

    def writable_folders(self) -> list[Path]:
        sub = [self.hash_dir / name for name in ("parts", "tracks", "masks", "backgrounds")]
        return [self.out_dir, self.out_dir / "shards", self.root, self.hash_dir, *sub]

    def read_tracks(self, key: str) -> dict | None:
        """Every track of the clip (`frame_index`, `track_id`, `boxes`), or None when the run kept none."""
        path = self.tracks(key)
        return dict(np.load(path)) if path.is_file() else None

    def read_masks(self, key: str) -> SubjectMasks | None:
        """The subject's full-resolution masks, or None when the run did not keep them (`--keep-masks`)."""
        path = self.masks(key)
        return SubjectMasks.from_bytes(path.read_bytes()) if path.is_file() else None


def current_run(out_dir: str | Path) -> tuple[RunFolder, dict]:
    """The run folder and run.json of the last extraction into `out_dir` (for qa and viz)."""
    path = Path(out_dir) / RUN_FOLDER / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no extraction run in {out_dir} (run `ragar-data extract` first)")
    info = json.loads(path.read_text())
    return RunFolder(Path(out_dir), info["config_hash"]), info
