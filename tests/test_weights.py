"""Weights registry, resumable checked downloads (against a local HTTP server on 127.0.0.1) and the
`ragar-data models` commands."""
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ragar_data import weights
from ragar_data.errors import ModelUnavailable, RagarDataError, SchemaError

PAPER_MODELS = ("yolo11m", "pp-humanseg-v2", "rtmpose-m", "rtmpose-l", "vitpose-b", "motionbert-ft-h36m")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes) with HTTP Range support (or without, when `ranges` is False)."""

    files: dict = {}
    ranges = True
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = self.files.get(self.path)
        range_header = self.headers.get("Range")
        self.requests.append((self.path, range_header))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if range_header and self.ranges:
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.files = {}
    _RangeHandler.requests = []
    _RangeHandler.ranges = True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _RangeHandler
    httpd.shutdown()
    httpd.server_close()


def test_registry_lists_the_paper_stack_with_sources():
    registry = weights.load_registry()
    assert set(PAPER_MODELS) <= set(registry)
    for spec in registry.values():
        assert spec.source.startswith("https://")
        assert all(f.url or f.pip or spec.how_to_get for f in spec.files)
    assert registry["rtmpose-m"].input_size == (192, 256) and registry["rtmpose-m"].keypoint_layout == "coco17"
    assert registry["motionbert-ft-h36m"].architecture["dim_feat"] == 512
    assert registry["motionbert-lite"].architecture["mlp_ratio"] == 4


def test_registry_errors_name_the_entry(tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_text(yaml.safe_dump({"models": {"broken": {"task": "detector", "backend": "yolo", "format": "pt",
                                                          "license": "x", "source": "s",
                                                          "files": [{"path": "a.pt", "url": None}]}}}))
    with pytest.raises(SchemaError, match="models.broken: a file has no url"):
        weights.load_registry(path)
    path.write_text(yaml.safe_dump({"models": {"odd": {"task": "tracker", "backend": "x", "format": "x",
                                                       "license": "x", "source": "s", "files": []}}}))
    with pytest.raises(SchemaError, match="models.odd: task 'tracker'"):
        weights.load_registry(path)


def test_models_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGAR_MODELS_DIR", str(tmp_path))
    assert weights.resolve_models_dir(None) == tmp_path
    assert weights.resolve_models_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("RAGAR_MODELS_DIR")
    assert weights.default_models_dir() == Path.home() / ".cache" / "ragar-data" / "models"


def test_require_says_where_the_file_belongs_and_how_to_get_it(tmp_path):
    with pytest.raises(ModelUnavailable) as missing:
        weights.require(models_dir=tmp_path, model="rtmpose-m", task="pose2d")
    assert str(tmp_path / "rtmpose-m" / "end2end.onnx") in str(missing.value)
    assert "ragar-data models download rtmpose-m" in str(missing.value)
    with pytest.raises(ModelUnavailable, match="paddle2onnx"):
        weights.require(models_dir=tmp_path, model="pp-humanseg-v2")
    with pytest.raises(ModelUnavailable, match="is a lifter, not a pose2d"):
        weights.require(models_dir=tmp_path, model="motionbert-ft-h36m", task="pose2d")
    with pytest.raises(ModelUnavailable, match="unknown model 'rtmpose-xl'"):
        weights.require(models_dir=tmp_path, model="rtmpose-xl")
    (tmp_path / "rtmpose-m").mkdir()
    (tmp_path / "rtmpose-m" / "end2end.onnx").write_bytes(b"onnx")
    spec, path = weights.require(models_dir=tmp_path, model="rtmpose-m")
    assert spec.name == "rtmpose-m" and path == tmp_path / "rtmpose-m" / "end2end.onnx"


def test_download_checks_sha256_and_renames_atomically(server, tmp_path):
    base, handler = server
    payload = bytes(range(256)) * 400
    handler.files["/model.bin"] = payload
    digest = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "m" / "model.bin"
    assert weights.download_file(f"{base}/model.bin", target, digest, progress=False) == digest
    assert target.read_bytes() == payload and not (tmp_path / "m" / "model.bin.part").exists()
    with pytest.raises(RagarDataError, match="does not match the expected"):
        weights.download_file(f"{base}/model.bin", tmp_path / "bad.bin", "0" * 64, progress=False)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()
    with pytest.raises(RagarDataError, match="HTTP 404"):
        weights.download_file(f"{base}/absent.bin", tmp_path / "absent.bin", progress=False)


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    base, handler = server
    payload = b"0123456789" * 5000
    handler.files["/model.bin"] = payload
    target = tmp_path / "model.bin"
    (tmp_path / "model.bin.part").write_bytes(payload[:12345])
    digest = hashlib.sha256(payload).hexdigest()
    weights.download_file(f"{base}/model.bin", target, digest, progress=False)
    assert target.read_bytes() == payload
    assert handler.requests[-1] == ("/model.bin", "bytes=12345-")


def test_download_restarts_when_the_server_ignores_ranges(server, tmp_path):
    base, handler = server
    handler.ranges = False
    payload = b"abcdef" * 1000
    handler.files["/model.bin"] = payload
    (tmp_path / "model.bin.part").write_bytes(b"garbage-prefix")
    weights.download_file(f"{base}/model.bin", tmp_path / "model.bin", hashlib.sha256(payload).hexdigest(),
                          progress=False)
    assert (tmp_path / "model.bin").read_bytes() == payload


def _zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _spec(name, files, task="pose2d"):
    return weights.ModelSpec(name=name, task=task, backend="rtmpose", format="onnx", license="x", source="s",
                             input_size=None, keypoint_layout=None, files=tuple(files))


def test_download_model_extracts_archive_members(server, tmp_path):
    base, handler = server
    handler.files["/sdk.zip"] = _zip({"rtmpose-m_x/end2end.onnx": b"ONNX", "rtmpose-m_x/deploy.json": b"{}"})
    handler.files["/folder.zip"] = _zip({"inference_model/model.pdmodel": b"P", "inference_model/deploy.yaml": b"D"})
    spec = _spec("demo", [weights.ModelFile("end2end.onnx", f"{base}/sdk.zip", None, "zip", "end2end.onnx"),
                          weights.ModelFile("paddle", f"{base}/folder.zip", None, "zip")])
    path = weights.download_model(spec, tmp_path, progress=False)
    assert path == tmp_path / "demo"
    assert (tmp_path / "demo" / "end2end.onnx").read_bytes() == b"ONNX"
    assert (tmp_path / "demo" / "paddle" / "model.pdmodel").read_bytes() == b"P"
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["end2end.onnx", "paddle"]  # archives removed
    handler.requests.clear()
    weights.download_model(spec, tmp_path, progress=False)
    assert handler.requests == []  # present files are kept


def test_models_cli_list_download_check(server, tmp_path, monkeypatch):
    from ragar_data.cli.main import cli
    from ragar_data.pipelines.backends.random_models import write_random_models

    base, handler = server
    source = tmp_path / "served"
    write_random_models(source, ["rtmpose-m", "motionbert-lite"])
    onnx_bytes = (source / "rtmpose-m" / "end2end.onnx").read_bytes()
    handler.files["/rtm.zip"] = _zip({"rtmpose-m_simcc/end2end.onnx": onnx_bytes})
    registry = yaml.safe_load(weights.REGISTRY_PATH.read_text())
    registry["models"]["rtmpose-m"]["files"][0]["url"] = f"{base}/rtm.zip"
    registry["models"]["rtmpose-m"]["files"][0]["sha256"] = hashlib.sha256(handler.files["/rtm.zip"]).hexdigest()
    local_registry = tmp_path / "weights.yaml"
    local_registry.write_text(yaml.safe_dump(registry))
    monkeypatch.setattr(weights, "REGISTRY_PATH", local_registry)
    models_dir = tmp_path / "models"
    runner = CliRunner()

    listed = runner.invoke(cli, ["models", "list", "--models-dir", str(models_dir)])
    assert listed.exit_code == 0 and "rtmpose-m" in listed.output and "yes" not in listed.output
    downloaded = runner.invoke(cli, ["models", "download", "rtmpose-m", "--models-dir", str(models_dir)])
    assert downloaded.exit_code == 0, downloaded.output
    assert (models_dir / "rtmpose-m" / "end2end.onnx").read_bytes() == onnx_bytes
    no_url = runner.invoke(cli, ["models", "download", "pp-humanseg-v2", "--models-dir", str(models_dir)])
    assert no_url.exit_code != 0 and "paddle2onnx" in no_url.output
    checked = runner.invoke(cli, ["models", "check", "--models-dir", str(models_dir)])
    assert checked.exit_code == 1, checked.output  # the others are missing: the check fails, naming them
    assert "rtmpose-m" in checked.output and "keypoints (4, 17, 3)" in checked.output
    assert "yolo11m                missing" in checked.output and "ragar-data models download" in checked.stderr
    assert "yolo11m" in checked.stderr
    ok = runner.invoke(cli, ["models", "check", "rtmpose-m", "--models-dir", str(models_dir)])
    assert ok.exit_code == 0, ok.output
    named = runner.invoke(cli, ["models", "check", "yolo11m", "--models-dir", str(models_dir)])
    assert named.exit_code == 1  # a named model that is missing fails the check
