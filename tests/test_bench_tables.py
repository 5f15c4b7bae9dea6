"""Tables 5 and 6 end to end on tiny data, and CLIP's image encoder as an attribute recogniser
(random RN50 weights in open_clip's state-dict layout; nothing is downloaded)."""
import json

import pytest
import torch
from torch import nn

from factories import build_dataset
from ragar_data.attributes import default_schema
from ragar_data.cli.bench_table5 import ALIGN, CLASSIFICATION, FINE_TUNED, FLOOR, FUSION, ZERO_SHOT, run_table5
from ragar_data.cli.bench_table6 import run_table6
from ragar_data.models.clip_visual import ClipVisualRecogniser, load_open_clip
from ragar_data.models.text_encoders import UnsafeWeightsError

SCHEMA = default_schema()
TINY = ["train.align_iterations=2", "train.fusion_iterations=2", "train.classification_iterations=2",
        "train.batch_size=2", "data.frames=2", "data.max_eval_frames=2", "train.checkpoint_every=1"]


class MeanPixels(nn.Module):
    """A stand-in image encoder: (N, 3, 224, 224) -> (N, 4) channel means and their square."""

    def forward(self, images):
        means = images.mean((2, 3))
        return torch.cat([means, means[:, :1] ** 2], dim=1)


def test_padded_frames_do_not_change_the_pooled_embedding():
    model = ClipVisualRecogniser(MeanPixels(), torch.randn(SCHEMA.total_classes, 4), SCHEMA)
    frames = torch.rand(1, 2, 64, 44)
    padded = torch.cat([frames, torch.ones(1, 3, 64, 44)], dim=1)
    alone = model(frames)
    batched = model(torch.cat([padded, torch.rand(1, 5, 64, 44)]), torch.tensor([2, 5]))
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert model.images(frames[0]).shape == (2, 3, 224, 224)
    assert not torch.allclose(batched[0], batched[1])


def test_an_unofficial_torchscript_file_is_refused(tmp_path):
    scripted = tmp_path / "RN50.pt"
    torch.jit.script(nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(UnsafeWeightsError, match="not one of OpenAI's"):
        load_open_clip(scripted)


@pytest.fixture(scope="module")
def random_rn50(tmp_path_factory):
    import open_clip

    model = open_clip.create_model("RN50-quickgelu", pretrained=None)
    path = tmp_path_factory.mktemp("weights") / "RN50-random.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    build_dataset(root, subjects=("001", "002", "003"), conditions=("nm-01", "bg-01"), views=(0,),
                  lengths=(6, 4, 5))
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": ["001", "002"], "TEST_SET": ["003"]}))
    return root


@pytest.mark.slow
def test_table5_skips_clip_without_weights_then_runs_and_resumes(tiny_dataset, random_rn50, tmp_path):
    out, lines = tmp_path / "table5", []
    first = run_table5(tiny_dataset, out, "smoke", TINY, clip_weights=tmp_path / "absent.pt", log=lines.append)
    assert list(first) == [CLASSIFICATION, ALIGN, FUSION, FLOOR]
    assert sum("skipped" in line and "models download clip-rn50" in line for line in lines) == 2
    stamps = {row: out.joinpath("rows", f).stat().st_mtime_ns
              for row, f in ((ALIGN, "clip-gar-align.json"), (FUSION, "clip-gar-align-fusion.json"))}

    lines.clear()
    second = run_table5(tiny_dataset, out, "smoke", TINY, ["train.batch_size=2", "train.classification_iterations=1"],
                        clip_weights=random_rn50, log=lines.append)
    assert list(second) == [ZERO_SHOT, FINE_TUNED, CLASSIFICATION, ALIGN, FUSION, FLOOR]
    assert sum("done earlier" in line for line in lines) == 4  # only the two CLIP rows ran now
    assert stamps == {row: out.joinpath("rows", f).stat().st_mtime_ns
                      for row, f in ((ALIGN, "clip-gar-align.json"), (FUSION, "clip-gar-align-fusion.json"))}
    zero_shot = torch.load(second[ZERO_SHOT]["checkpoint"], weights_only=True)
    tuned = torch.load(second[FINE_TUNED]["checkpoint"], weights_only=True)
    assert (zero_shot["kind"], zero_shot["iteration"], tuned["iteration"]) == ("clip_visual", 0, 1)
    assert tuned["config"]["optim"]["lr"] == 5e-5
    assert not torch.equal(zero_shot["model"]["visual.conv1.weight"], tuned["model"]["visual.conv1.weight"])
    text = (out / "table5.md").read_text()
    assert "| CLIP RN50 zero-shot |" in text and "(33.97)" in text and "(76.00)" in text
    assert {"condition=nm", "condition=bg", "combination=real"} <= set(second[ZERO_SHOT]["breakdown"])
    assert "condition=bg" in (out / "table5-covariates.md").read_text()
    assert (out / "table5.png").read_bytes()[:4] == b"\x89PNG"
    written = json.loads((out / "table5.json").read_text())
    assert list(written["rows"]) == list(second) and written["skipped"] == {}


@pytest.mark.slow
def test_table6_sweeps_parts_per_run(tiny_dataset, tmp_path):
    out = tmp_path / "table6"
    results = run_table6(tiny_dataset, out, "smoke", (8, 1), TINY, log=lambda _: None)
    assert list(results) == [f"{stage}, p={p}" for p in (8, 1) for stage in (ALIGN, FUSION)]
    for p in (8, 1):
        checkpoint = torch.load(results[f"{FUSION}, p={p}"]["checkpoint"], weights_only=True)
        assert checkpoint["config"]["model"]["parts"] == p
        assert checkpoint["model"]["fusion_head.e_pos"].shape[1] == p
    text = (out / "table6.md").read_text()
    assert "| CLIP-GAR align, p=8 | " in text and "(73.04)" in text
    assert "| CLIP-GAR align, p=1 | " in text and text.count("(—)") >= 10
