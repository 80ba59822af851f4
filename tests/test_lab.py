"""The live widgets where readers use them: a real JupyterLab in headless Chromium.

``jupyter lab`` is started on 127.0.0.1 (a free port, a random token) in a temporary folder with
a copy of chapter 4 up to its attention explorer, and a scratch notebook that trains a tiny
model with ``LiveLossPlot``. The test runs the chapter from the Run menu, moves the explorer's
layer and head controls and checks that the heat map changes; then it runs the training cell and
checks that the loss plot gains points while the cell is still running. The book's MyST renders
(jupyterlab-myst). The server is shut down through its API at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "_build" / "screenshots"
CHAPTER = ROOT / "chapters" / "04_attention.ipynb"
RUN_TIMEOUT_MS = 240_000  # a smoke run takes about a minute on an idle machine


def _module_defining(name: str, kind: str = "class") -> str:
    """The llmbook_utils module that defines ``name`` (code moves between modules)."""
    for path in sorted((ROOT / "llmbook_utils").glob("*.py")):
        if re.search(rf"^{kind} {name}\b", path.read_text(), re.M):
            return f"llmbook_utils.{path.stem}"
    raise AssertionError(f"no llmbook_utils module defines {name}")


def _chapter_up_to_the_explorer(target: Path) -> None:
    nb = nbformat.read(CHAPTER, as_version=4)
    last = max(
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and re.search(r"^AttentionExplorer\(", c.source, re.M)
    )
    solution = next(
        c for c in nb.cells if c.cell_type == "markdown" and ":::{admonition} Solution" in c.source
    )
    nb.cells = [*nb.cells[: last + 1], solution]  # and one solution, to see MyST render
    nbformat.write(nb, target)


TRAINING_CELL = """\
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from {live} import LiveLossPlot
from {config} import TrainConfig
from {train} import train


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x, y):
        pred = self.lin(x).squeeze(-1)
        return pred, ((pred - y) ** 2).mean()


class SlowPlot(LiveLossPlot):  # a step this small takes microseconds: slow it down to watch
    def on_log(self, record):
        super().on_log(record)
        time.sleep(0.05)


torch.manual_seed(0)
x = torch.randn(256, 4)
data = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]))
cfg = TrainConfig(max_steps=150, batch_size=16, lr=0.05, log_every=1, progress=False, device="cpu")
history = train(Tiny(), data, cfg, callbacks=[SlowPlot(title="live loss", min_interval_s=0.2)])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("jupyterlab is not installed in this environment (make venv installs it)")
    work = tmp_path_factory.mktemp("lab")
    notebooks = work / "notebooks"
    notebooks.mkdir()
    _chapter_up_to_the_explorer(notebooks / CHAPTER.name)
    scratch = nbformat.v4.new_notebook()
    scratch.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    code = TRAINING_CELL.format(
        live=_module_defining("LiveLossPlot"),
        config=_module_defining("TrainConfig"),
        train=_module_defining("train", kind="def"),
    )
    scratch.cells = [nbformat.v4.new_code_cell(code)]
    nbformat.write(scratch, notebooks / "live_loss.ipynb")
    # Settings: no news or update checks. (Cells keep JupyterLab's default "defer" windowing:
    # every cell reaches the DOM, the visible ones first, so the kernel is requested sooner.)
    settings = work / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    ).write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items() if k != "LLMBOOK_STATIC"}  # live widgets
    env.update(
        LLMBOOK_PROFILE="smoke",
        HF_HUB_OFFLINE="1",
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
    )
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        str(Path(sys.executable).parent / "jupyter-lab"),
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries for the extension manager
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI runs as root
    log = open(work / "server.log", "w")  # noqa: SIM115  (closed below)
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=notebooks)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited:\n{(work / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield base, token
    finally:
        try:  # a clean shutdown: kernels stopped, then the server exits
            request = urllib.request.Request(
                f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(request, timeout=10)
            server.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()


def _open(browser, base: str, token: str, name: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def guard(route):
        if urlparse(route.request.url).hostname in (
            "127.0.0.1",
            None,
        ) or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    # ?reset: a fresh workspace, so the other test's notebook is not reopened beside this one.
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # The kernel is ready when the toolbar's kernel status says idle.
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')]
             .some(e => e.getAttribute('data-status') === 'idle')""",
        timeout=60_000,
    )
    return page, outside


def _sessions(base: str, token: str) -> list[dict]:
    request = urllib.request.Request(
        f"{base}/api/sessions", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _kernel_idle(base: str, token: str, name: str) -> bool:
    # JupyterLab 4 may name a session's path by a UUID; its name is the notebook's file name.
    return any(
        name in (s.get("name"), s.get("path", "").rsplit("/", 1)[-1])
        and (s.get("kernel") or {}).get("execution_state") == "idle"
        for s in _sessions(base, token)
    )


def _run_all(page, base: str, token: str, name: str) -> None:
    """Run > Run All Cells from the menu bar, once the notebook's kernel is up and idle (a run
    requested before the kernel has connected is dropped, so it is requested again)."""
    # A kernel starts in seconds on an idle machine. On a swamped one the page may connect to
    # it too early and stay "starting"; a reload then reconnects to the same kernel.
    start = time.monotonic()
    reloaded = False
    while not _kernel_idle(base, token, name):
        waited = time.monotonic() - start
        if waited > 120 and not reloaded:
            page.reload(wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            reloaded = True
        elif waited > 240:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "lab_failure.png"))
            pytest.fail(f"no idle kernel for {name}: {_sessions(base, token)}", pytrace=False)
        # Not time.sleep: the route guard's handler runs only while playwright has control, and
        # a request left waiting there (the one that starts the kernel) would never be sent.
        page.wait_for_timeout(500)
    for _ in range(3):
        page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the active tab
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
        try:
            page.wait_for_function(
                "() => (" + PROMPTS_JS + ")().some(t => t !== '[ ]:')", timeout=20_000
            )
            return
        except Exception:  # noqa: BLE001  (playwright's TimeoutError: try once more)
            continue
    pytest.fail("Run All Cells started no cell", pytrace=False)


# The prompts of the code cells that have code.
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-CodeCell')]
  .filter(c => (c.querySelector('.cm-content') || c).innerText.trim() !== '')
  .map(c => c.querySelector('.jp-InputPrompt').textContent.trim())"""


def _wait_until_idle(page, timeout_ms: int) -> None:
    """Every code cell has run: no [*] prompt is left and the last cell has a number."""
    try:
        _wait_for_prompts(page, timeout_ms)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "lab_failure.png"))
        pytest.fail(f"cells still running or not run: {page.evaluate(PROMPTS_JS)}", pytrace=False)


def _wait_for_prompts(page, timeout_ms: int) -> None:
    page.wait_for_function(
        "() => { const p = (" + PROMPTS_JS + ")();"
        " return p.length > 0 && p.every(t => /\\[\\d+\\]/.test(t)); }",
        timeout=timeout_ms,
    )


HEATMAP_JS = """() => {
  const plots = [...document.querySelectorAll('.widget-output .js-plotly-plot')];
  const plot = plots[plots.length - 1];
  if (!plot || !plot.data || !plot.data.length) return null;
  const title = plot.layout && plot.layout.title;
  return {z: JSON.stringify(plot.data[0].z),
          title: typeof title === 'string' ? title : (title && title.text) || ''};
}"""


MYST_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-MarkdownCell')];
  const rendered = cells
    .map(c => c.querySelector('.jp-MarkdownOutput, .jp-RenderedMarkdown, .myst'))
    .filter(Boolean);
  return {
    cells: rendered.length,
    text: rendered.map(r => r.innerText).join('\\n'),
    math: rendered.filter(r => r.querySelector('mjx-container, .MathJax, .katex, math')).length,
    admonitions: rendered.filter(r => r.querySelector('aside, .admonition, details')).length,
  };
}"""


def _slider(page, description: str):
    return page.locator(".widget-slider", has=page.locator(f"label:text-is('{description}')"))


def _set_slider(page, description: str, value: int) -> None:
    readout = _slider(page, description).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def _wait_for_new_heatmap(page, before: dict, timeout_ms: int = 30_000) -> dict:
    old_title = json.dumps(before["title"])
    page.wait_for_function(
        f"() => {{ const h = ({HEATMAP_JS})(); return h && h.title !== {old_title}; }}",
        timeout=timeout_ms,
    )
    return page.evaluate(HEATMAP_JS)


def test_attention_explorer_controls_change_the_heat_map(lab, browser):
    base, token = lab
    page, outside = _open(browser, base, token, CHAPTER.name)
    try:
        _run_all(page, base, token, CHAPTER.name)
        _wait_until_idle(page, RUN_TIMEOUT_MS)
        errors = page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not tracebacks, f"the chapter raised in JupyterLab: {tracebacks[:1]}"
        page.wait_for_function(f"() => ({HEATMAP_JS})() !== null", timeout=30_000)
        first = page.evaluate(HEATMAP_JS)
        assert "layer 1, head 1" in first["title"], first["title"]

        _set_slider(page, "layer", 2)
        second = _wait_for_new_heatmap(page, first)
        assert "layer 2, head 1" in second["title"], second["title"]
        assert second["z"] != first["z"], "moving the layer control did not change the heat map"

        _set_slider(page, "head", 3)
        third = _wait_for_new_heatmap(page, second)
        assert "layer 2, head 3" in third["title"], third["title"]
        assert third["z"] not in (first["z"], second["z"]), "the head control changed nothing"

        # The book's MyST renders in JupyterLab (jupyterlab-myst): admonitions, math, roles.
        myst = page.evaluate(MYST_JS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".jp-MarkdownCell").last.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "lab_myst.png"))
        assert myst["cells"] > 10, myst
        for raw in (":::{admonition}", "{cite:p}`", "{eq}`", "$$"):
            assert raw not in myst["text"], f"raw MyST {raw!r} shows in JupyterLab"
        assert myst["math"] > 0, "no typeset math in the markdown cells"
        assert myst["admonitions"] > 0, "the solution admonition did not render"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        _slider(page, "layer").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "lab_attention_explorer.png"))
        assert not outside, f"JupyterLab requested outside addresses: {sorted(set(outside))[:5]}"
    finally:
        page.close()


COUNT_JS = """() => {
  const plots = [...document.querySelectorAll('.jp-OutputArea .js-plotly-plot')];
  const plot = plots[plots.length - 1];
  const busy = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(p => p.textContent.includes('*'));
  return {points: plot && plot.data && plot.data.length ? plot.data[0].x.length : 0, busy};
}"""


def test_live_loss_plot_updates_while_training_runs(lab, browser):
    base, token = lab
    page, _ = _open(browser, base, token, "live_loss.ipynb")
    try:
        _run_all(page, base, token, "live_loss.ipynb")
        seen_while_running: list[int] = []
        final = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = page.evaluate(COUNT_JS)
            if state["busy"]:
                seen_while_running.append(state["points"])
            elif seen_while_running or state["points"]:
                final = state["points"]
                if final:
                    break
            page.wait_for_timeout(150)
        _wait_until_idle(page, 30_000)
        final = page.evaluate(COUNT_JS)["points"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "lab_live_loss.png"))
        growing = sorted({n for n in seen_while_running if 0 < n < final})
        assert final >= 100, f"the final loss plot has {final} points, expected about 150"
        assert len(growing) >= 3, (
            f"the plot did not grow while training ran: saw {sorted(set(seen_while_running))}"
        )
    finally:
        page.close()
