"""The typed config loader (ragar_data.typed_config) behind the extraction presets, training configs and
SynthConfig: unknown keys, wrong types and out-of-range numbers are refused with the key named, before any work."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from ragar_data.errors import RagarDataError
from ragar_data.pipelines.config import PipelineConfig, apply_overrides, load_preset
from ragar_data.synth import SynthConfig
from ragar_data.training.config import Config, ConfigError, config_from_dict, load_config
from ragar_data.typed_config import build, setting
from ragar_data.typed_config import apply_overrides as typed_overrides

# PipelineConfig.hash() of the packaged presets before the configs moved onto the typed loader: the hash is stored
# in every shard (`pipeline_hash`) and resumption compares it, so it must not move for the same values
DEFAULT_PRESET_HASH = "c4cdc528285f2749"
PAPER_PRESET_HASH = "f89a6f1cfd977c08"


def test_preset_hashes_are_unchanged(tmp_path):
    from ragar_data.pipelines.verify import active_verification

    # the default preset's person verification is off without its model files (none in tmp_path): same hash
    config = active_verification(load_preset("default"), tmp_path)
    assert config.hash() == DEFAULT_PRESET_HASH
    assert load_preset("paper").hash() == PAPER_PRESET_HASH
    assert PipelineConfig.from_dict(config.to_dict()).hash() == DEFAULT_PRESET_HASH  # the workers' round trip


def test_config_error_is_a_library_error_and_old_imports_work():
    from ragar_data.training import config as training_config

    assert training_config.ConfigError is ConfigError
    assert issubclass(ConfigError, RagarDataError) and issubclass(ConfigError, ValueError)


# ------------------------------------------------------------------------------------------------ unknown keys

def test_unknown_keys_are_named_in_all_three_configs(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"detect": {"work_widht": 320}}))
    with pytest.raises(ConfigError, match=rf"{preset}: unknown key 'detect.work_widht'; did you mean "
                                          r"'detect.work_width'\? \(known keys of detect: backend, work_width"):
        load_preset(preset)
    training = tmp_path / "train.yaml"
    training.write_text(yaml.safe_dump({"optim": {"learning_rate": 1e-3}}))
    with pytest.raises(ConfigError, match=r"unknown key 'optim.learning_rate'.*known keys of optim: lr, "):
        load_config(training)
    with pytest.raises(ConfigError, match=r"checkpoint config: unknown key 'data.framez'; did you mean 'data.frames'"):
        config_from_dict({"data": {"framez": 3}})
    document = SynthConfig.small().to_dict() | {"subject": 3}
    with pytest.raises(ConfigError, match=r"synth.json: unknown key 'subject'; did you mean 'subjects'"):
        SynthConfig.from_dict(document, "synth.json")


# ------------------------------------------------------------------------------------------------ types

def test_wrong_types_name_key_expected_type_and_value(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("track:\n  track_buffer: thirty\n")
    with pytest.raises(ConfigError, match=rf"{preset}: track.track_buffer: expected an integer, found 'thirty'"):
        load_preset(preset)
    with pytest.raises(ConfigError, match=r"override: track.fuse_score: expected true or false, found 3"):
        apply_overrides(load_preset(), ["track.fuse_score=3"])
    with pytest.raises(ConfigError, match=r"override: train.batch_size: expected an integer, found 2.5"):
        load_config("smoke", ["train.batch_size=2.5"])
    with pytest.raises(ConfigError, match=r"override: data.frames: null is not allowed \(expected an integer\)"):
        load_config("smoke", ["data.frames=null"])
    with pytest.raises(ConfigError, match=r"SynthConfig: seconds: expected a number, found 'long'"):
        SynthConfig(seconds="long")
    with pytest.raises(ConfigError, match=r"SynthConfig: subjects: expected an integer, found True"):
        SynthConfig(subjects=True)


def test_values_are_coerced_to_the_field_type():
    config = load_config("smoke", ["optim.lr=1e-3", "model.channels=4,8,8,16", "train.output_dir=2024"])
    # PyYAML reads `1e-3` as a string; a folder named 2024 stays a string
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)
    assert config.model.channels == [4, 8, 8, 16] and config.train.output_dir == "2024"
    synth = SynthConfig.small(views=[0, 90], seconds=1)
    assert synth.views == (0, 90) and isinstance(synth.seconds, float)
    assert config_from_dict(config.to_dict()) == config


# ------------------------------------------------------------------------------------------------ ranges

@pytest.mark.parametrize("override, message", [
    ("detect.work_width=-1", r"detect.work_width: must be >= 0, found -1"),
    ("detect.work_width=8", r"detect.work_width: must be 0 \(full resolution\) or >= 32, found 8"),
    ("rows_per_shard=0", r"rows_per_shard: must be >= 1, found 0"),
    ("track.match_thresh=1.5", r"track.match_thresh: must be >= 0.0 and <= 1.0, found 1.5"),
    ("quality.min_track_coverage=-0.1", r"quality.min_track_coverage: must be >= 0.0 and <= 1.0"),
    ("select.min_frames=0", r"select.min_frames: must be >= 1, found 0"),
    ("silhouette_size=63", r"silhouette_size: must be even, found 63"),
    ("decode.frame_format=bgr", r"decode.frame_format: must be one of 'rgb24', 'yuv420p', found 'bgr'"),
])
def test_pipeline_values_out_of_range_are_refused(override, message):
    with pytest.raises(ConfigError, match=rf"override: {message}"):
        apply_overrides(load_preset(), [override])


@pytest.mark.parametrize("override, message", [
    ("optim.lr=0", r"optim.lr: must be > 0.0, found 0.0"),
    ("optim.betas=[0.9,1.0]", r"optim.betas\[1\]: must be >= 0.0 and < 1.0, found 1.0"),
    ("train.checkpoint_every=0", r"train.checkpoint_every: must be >= 1"),
    ("data.sampling=random", r"data.sampling: must be one of 'fixed_ordered'"),
    ("model.parts=3", r"model.parts: must be one of 1, 2, 4, 8, 16, found 3"),
    ("model.layers=[1,1]", r"model.layers: expected 4 entries"),
    ("text.backend=bert", r"text.backend: expected 'clip', 'open_clip:<model>' or 'learned', found 'bert'"),
])
def test_training_values_out_of_range_are_refused(override, message):
    with pytest.raises(ConfigError, match=rf"override: {message}"):
        load_config("smoke", [override])


@pytest.mark.parametrize("settings, message", [
    (dict(subjects=0), r"subjects: must be >= 1, found 0"),
    (dict(views=(0, 360)), r"views\[1\]: must be >= 0 and <= 359, found 360"),
    (dict(crf=52), r"crf: must be >= 0 and <= 51"),
    (dict(width=321), r"width: must be even"),
    (dict(preset="fastest"), r"preset: must be an x264 preset"),
])
def test_synth_values_out_of_range_are_refused(settings, message):
    with pytest.raises(ConfigError, match=rf"SynthConfig: {message}"):
        SynthConfig.small(**settings)


def test_backend_and_model_names_are_checked_at_load():
    config = load_preset()
    with pytest.raises(ConfigError, match=r"detect.backend: unknown backend 'yolov8'; known: background, blazepose, yolo"):
        apply_overrides(config, ["detect.backend=yolov8"])
    with pytest.raises(ConfigError, match=r"pose2d.model: unknown pose2d model 'rtmpose-x'"):
        apply_overrides(config, ["pose2d.backend=rtmpose", "pose2d.model=rtmpose-x"])
    with pytest.raises(ConfigError, match=r"decode.frame_format: the opencv backend gives RGB frames only"):
        apply_overrides(config, ["decode.backend=opencv"])
    assert apply_overrides(config, ["decode.backend=opencv", "decode.frame_format=rgb24"]).decode.backend == "opencv"


# ------------------------------------------------------------------------------------------------ --set and resolution

def test_set_overrides_parse_yaml_scalars_by_field():
    config = load_preset()
    changed = apply_overrides(config, ["detect.work_width=320", "detect.options.min_threshold=10",
                                       "pose2d.backend=null", "track.split_merged=true", "name=2024"])
    assert changed.detect.work_width == 320 and changed.detect.options["min_threshold"] == 10
    assert changed.pose2d.backend is None and changed.track.split_merged is True and changed.name == "2024"
    assert apply_overrides(config, {"detect.work_width": 320}) == apply_overrides(config, ["detect.work_width=320"])
    assert config.detect.work_width == 480  # the input is not changed
    with pytest.raises(ConfigError, match=r"detect.work_width.x: detect.work_width is not a section"):
        apply_overrides(config, ["detect.work_width.x=1"])
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        apply_overrides(config, ["detect.work_width"])


def test_expect_resolution_is_parsed_when_loaded():
    config = load_preset()
    assert apply_overrides(config, ["decode.expect_resolution=1920x1080"]).decode.expect_resolution == "1920x1080"
    with pytest.raises(ConfigError, match=r"decode.expect_resolution: resolution '480by270': expected WIDTHxHEIGHT"):
        apply_overrides(config, ["decode.expect_resolution=480by270"])
    with pytest.raises(ConfigError, match=r"decode.expect_resolution: .*must be positive"):
        apply_overrides(config, ["decode.expect_resolution=0x270"])


def test_cli_extract_refuses_bad_options_before_any_work(tmp_path):
    from click.testing import CliRunner

    from ragar_data.cli.main import cli

    videos, out = tmp_path / "videos", tmp_path / "dataset"
    videos.mkdir()
    for arguments, message in ((["--expect-resolution", "480by270"], "decode.expect_resolution"),
                               (["--set", "detect.work_width=-1"], "detect.work_width: must be >= 0"),
                               (["--set", "rows_per_shard=0"], "rows_per_shard: must be >= 1")):
        result = CliRunner().invoke(cli, ["extract", "--videos", str(videos), "-o", str(out), *arguments])
        assert result.exit_code == 1 and message in result.output  # one 'error: ...' line (cli/common.py)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ the loader itself

@dataclass
class Inner:
    size: int = setting(3, min=1)
    scales: list[float] = setting([0.5, 1.0], above=0.0)


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    label: str | None = None


def test_build_nested_with_defaults_and_fresh_list_defaults():
    first, second = build(Outer, {"inner": {"size": "4"}}, "test"), Outer()
    assert first.inner.size == 4 and first.inner.scales == [0.5, 1.0]
    first.inner.scales.append(2.0)
    assert second.inner.scales == [0.5, 1.0]
    with pytest.raises(ConfigError, match=r"test: inner: expected a mapping, found 5"):
        build(Outer, {"inner": 5}, "test")
    with pytest.raises(ConfigError, match=r"override: inner.scales\[0\]: must be > 0.0, found 0.0"):
        typed_overrides(Outer(), ["inner.scales=[0, 1]"])
    assert typed_overrides(Outer(), ["label=null"]).label is None


def test_training_defaults_and_packaged_configs_load():
    for name in ("clipgar", "smoke", "short_cpu", "table5_cpu", None):
        assert isinstance(load_config(name), Config)
