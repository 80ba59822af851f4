"""Every chapter executes end to end in the active profile (smoke under `make test`), in a fresh
virtual environment that holds only the package and what it declares: the reader's Colab path.

Each chapter runs once, on a kernel of that environment (``fresh_venv`` in conftest.py). The
chapters run ``LLMBOOK_TEST_KERNELS`` at a time (default: one per two cores, at least two), each
kernel with its share of the cores as threads: a smoke run is mostly Python and start-up, so two
one-thread kernels get through the book faster than one two-thread kernel. The executed
notebooks are kept in ``_build/smoke/chapters`` for ``make colab`` and the Colab-edition
test, and the time of each chapter is reported at the end of the run.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor

import nbformat
import pytest
from conftest import CHAPTER_TIMES, CHAPTERS, EXECUTED_CHAPTERS, KERNEL_NAME, ROOT
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.slow

EXECUTED = EXECUTED_CHAPTERS


def _kernel_env() -> dict[str, str]:
    """The test's environment (profile, static mode, offline hubs) without this venv's paths."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _failing_cell(nb: nbformat.NotebookNode) -> str:
    for index, cell in enumerate(nb.cells, 1):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"cell {index} ({first_line!r})"
    return "an unknown cell"


def test_fresh_venv_imports_the_installed_package_not_the_tree(fresh_venv):
    code = "import llmbook_utils, sys; print(llmbook_utils.__file__); print(sys.prefix)"
    env = _kernel_env()
    result = subprocess.run(
        [str(fresh_venv.python), "-c", code],
        capture_output=True, text=True, cwd=ROOT / "chapters", env=env, check=True,
    )  # fmt: skip
    module_file, prefix = result.stdout.split()
    assert module_file.startswith(prefix), f"llmbook_utils came from {module_file}, not the venv"


KERNELS = int(os.environ.get("LLMBOOK_TEST_KERNELS", max(2, (os.cpu_count() or 2) // 2)))
THREADS = max(1, (os.cpu_count() or 2) // KERNELS)  # threads per kernel: the cores, shared


def _execute(path, fresh_venv) -> tuple[nbformat.NotebookNode, str | None]:
    """Run one chapter on a fresh-venv kernel; return the notebook and the error (or None)."""
    nb = nbformat.read(path, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[str(fresh_venv.kernel_dirs)])
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = NotebookClient(
        nb,
        km=km,
        timeout=1200,
        startup_timeout=600,  # a kernel starts in seconds, unless the CPU is swamped
        resources={"metadata": {"path": str(path.parent)}},
    )
    threads = {name: str(THREADS) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    try:
        client.execute(env={**_kernel_env(), **threads})
    except CellExecutionError as err:
        return nb, f"{path.name}: {_failing_cell(nb)} raised:\n{err}"
    finally:
        CHAPTER_TIMES[path.name] = time.perf_counter() - start
    return nb, None


@pytest.fixture(scope="module")
def chapter_runs(request, fresh_venv):
    """The selected chapters, submitted in order to a pool of KERNELS workers; each test waits
    for its own."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_chapter_executes"
    ]
    for path in selected:
        (EXECUTED / path.name).unlink(missing_ok=True)  # only a successful run leaves a copy
    pool = ThreadPoolExecutor(max_workers=KERNELS, thread_name_prefix="chapter")
    runs: dict[str, Future] = {p.name: pool.submit(_execute, p, fresh_venv) for p in selected}
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_executes(path, chapter_runs):
    nb, error = chapter_runs[path.name].result()
    if error is not None:
        pytest.fail(error, pytrace=False)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED / path.name)
