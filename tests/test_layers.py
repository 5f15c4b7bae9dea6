"""Imports run one way: cli -> pipelines -> the rest of ragar_data, never back (read from the source, not run).

pyproject.toml maps the folders beside ragar_data/ into the package: pipelines/ is `ragar_data.pipelines`,
cli/ is `ragar_data.cli`, schemas/ is `ragar_data.schemas`.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module `path` imports, anywhere in the file (inside functions too), relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def package_of(path: Path, folder: str, package: str) -> str:
    relative = path.parent.relative_to(ROOT / folder)
    return ".".join([package, *relative.parts]) if relative.parts else package


def offending_imports(folder: str, package: str, forbidden: tuple[str, ...]) -> list[str]:
    problems = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in sorted(imported_modules(path, package_of(path, folder, package))):
            if any(module == name or module.startswith(name + ".") for name in forbidden):
                problems.append(f"{path.relative_to(ROOT)} imports {module}")
    return problems


def test_the_folders_are_the_packages_pyproject_maps():
    text = (ROOT / "pyproject.toml").read_text()
    for folder, package in (("pipelines", "ragar_data.pipelines"), ("cli", "ragar_data.cli"),
                            ("schemas", "ragar_data.schemas")):
        assert f'"{package}" = "{folder}"' in text
        assert (ROOT / folder / "__init__.py").is_file()


def test_library_imports_neither_pipelines_nor_cli():
    assert list((ROOT / "ragar_data").rglob("*.py")), "no library modules found"
    assert offending_imports("ragar_data", "ragar_data", ("ragar_data.pipelines", "ragar_data.cli")) == []


@pytest.mark.parametrize("folder, package", [("pipelines", "ragar_data.pipelines"), ("schemas", "ragar_data.schemas")])
def test_pipelines_and_schemas_never_import_the_cli(folder, package):
    assert offending_imports(folder, package, ("ragar_data.cli",)) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from ragar_data.pipelines.runner import extract\n    from ..cli import main\n")
    found = imported_modules(module, "ragar_data.sub")
    assert "ragar_data.pipelines.runner" in found
    assert "ragar_data.cli.main" in found


def test_test_modules_share_builders_through_factories_not_each_other():
    problems = [f"{path.name} imports {module}" for path in sorted((ROOT / "tests").glob("*.py"))
                for module in imported_modules(path, "tests") if module.split(".")[0].startswith("test_")]
    assert problems == []
