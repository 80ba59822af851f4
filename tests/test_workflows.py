"""The GitHub Actions workflows cannot run here: check that they parse, call only Makefile
targets that exist, and do what the book's publishing needs."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.\-]*)\s*:(?!=)", text, re.M)}


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"book.yml", "release.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_parses_and_calls_existing_make_targets(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow.get("jobs"), f"{path.name} has no jobs"
    # PyYAML reads the key `on` as True.
    assert workflow.get("on") or workflow.get(True), f"{path.name} has no trigger"
    targets = _makefile_targets()
    for step in _steps(workflow):
        assert "uses" in step or "run" in step, f"{path.name}: a step with neither uses nor run"
        for target in re.findall(r"\bmake\s+([A-Za-z][\w.\-]*)", step.get("run", "")):
            assert target in targets, f"{path.name} runs `make {target}`, not in the Makefile"


def test_book_workflow_builds_tests_deploys_and_publishes_the_colab_edition():
    workflow = _load("book.yml")
    runs = "\n".join(step.get("run", "") for step in _steps(workflow))
    uses = [step.get("uses", "") for step in _steps(workflow)]
    assert workflow["env"]["LLMBOOK_PROFILE"] == "cpu"
    assert re.search(r"make book\b", runs) and re.search(r"make test\b", runs)
    assert re.search(r"make colab\b", runs)
    assert runs.index("make book") < runs.index("make colab"), "the edition needs the build"
    cached = [step["with"]["path"] for step in _steps(workflow) if "cache" in step.get("uses", "")]
    assert any("_build/.jupyter_cache" in path for path in cached), "no execution cache"
    assert ".jupyter_cache" in (ROOT / "Makefile").read_text()
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    pages = next(
        s for s in _steps(workflow) if s.get("uses", "").startswith("actions/upload-pages")
    )
    assert pages["with"]["path"] == "_build/html"
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"][
        "colab_edition_branch"
    ]
    assert re.search(rf"git push .* {branch}\b", runs), f"the edition is not pushed to {branch}"
    assert "_build/colab" in runs


def test_release_workflow_builds_checks_and_publishes_the_package():
    workflow = _load("release.yml")
    trigger = workflow.get("on") or workflow.get(True)
    assert trigger["push"]["tags"], "the release is not tag-triggered"
    runs = "\n".join(step.get("run", "") for step in _steps(workflow))
    uses = [step.get("uses", "") for step in _steps(workflow)]
    assert "python -m build" in runs and "twine check" in runs
    assert any(u.startswith("pypa/gh-action-pypi-publish") for u in uses)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^name = "llmbook-utils"$', pyproject, re.M)
