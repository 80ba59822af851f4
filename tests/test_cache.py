"""The atomic writers of llmbook_utils.cache: an interrupted write never damages what was there."""

import os
import stat

import pytest

from llmbook_utils.cache import write_atomic, write_dir_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_atomic_replaces_whole_file_with_usual_permissions(tmp_path):
    path = tmp_path / "sub" / "data.bin"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert _mode(path) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.bin"]  # no temporary left


def _writer(files: dict[str, str], fail_after: int | None = None):
    def save(folder):
        for i, (name, text) in enumerate(files.items()):
            if fail_after is not None and i == fail_after:
                raise KeyboardInterrupt  # an interruption half-way through the folder
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)

    return save


def test_write_dir_atomic_creates_the_folder_with_usual_permissions(tmp_path):
    final = tmp_path / "model"
    write_dir_atomic(final, _writer({"config.json": "{}", "nested/weights.bin": "w"}))
    assert (final / "config.json").read_text() == "{}"
    assert _mode(final) == 0o755 and _mode(final / "nested") == 0o755
    assert _mode(final / "nested" / "weights.bin") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("replace", [False, True])
def test_interrupted_write_leaves_the_existing_folder_intact(tmp_path, replace):
    final = tmp_path / "model"
    write_dir_atomic(final, _writer({"a.txt": "old a", "b.txt": "old b"}))
    with pytest.raises(KeyboardInterrupt):
        write_dir_atomic(final, _writer({"a.txt": "new a", "b.txt": "new b"}, fail_after=1),
                         replace=replace)  # fmt: skip
    assert (final / "a.txt").read_text() == "old a" and (final / "b.txt").read_text() == "old b"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_replace_swaps_in_the_new_folder_and_keep_keeps_the_old(tmp_path):
    final = tmp_path / "model"
    write_dir_atomic(final, _writer({"a.txt": "old", "stale.txt": "x"}))
    write_dir_atomic(final, _writer({"a.txt": "new"}))  # a cache entry: the first one stays
    assert (final / "a.txt").read_text() == "old"
    write_dir_atomic(final, _writer({"a.txt": "new"}), replace=True)
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"]  # no file of the old folder
    assert (final / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
