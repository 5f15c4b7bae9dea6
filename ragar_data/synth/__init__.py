"""Synthetic RA-GAR: articulated walkers rendered by fixed cameras, with exact ground truth.

Public API:
    SynthConfig                     what to render (defaults mirror RA-GAR; `SynthConfig.small()` for tests)
    subject_attributes(config)      (subject, combination) -> (15,) int8 class indices
    render_sequence(config, key, labels=None) -> (frames (T,H,W,3) uint8 RGB, ground truth dict)
    render_masks(config, key, labels=None)    -> (T,H,W) bool subject masks
    stream_sequence(config, key)    frames iterator + ground truth filled while iterating (bit-packed masks)
    generate(out_dir, config, workers=1, progress=True) -> summary dict
    load_ground_truth(path) / save_ground_truth(path, truth)
    write_preview(path, config)     contact sheet PNG
Modules: config (settings, seeded streams), body (labels -> body and gait parameters), gait (kinematics and
body surface), camera (views), render (background, rasterisation), sequence (one sequence + ground truth),
video (PyAV), ground_truth (npz), generate (the tree), preview (contact sheet).
"""
from ragar_data.synth.body import subject_attributes
from ragar_data.synth.config import SynthConfig
from ragar_data.synth.generate import generate, sequence_keys
from ragar_data.synth.ground_truth import ground_truth_relpath, load_ground_truth, save_ground_truth
from ragar_data.synth.preview import write_preview
from ragar_data.synth.sequence import render_masks, render_sequence, stream_sequence
from ragar_data.synth.video import read_video, write_video

__all__ = [
    "SynthConfig", "subject_attributes", "render_sequence", "render_masks", "stream_sequence", "generate",
    "sequence_keys", "load_ground_truth", "save_ground_truth", "ground_truth_relpath", "write_preview",
    "read_video", "write_video",
]
