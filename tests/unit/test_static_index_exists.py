"""index.py's test of an index file without disable_symlinks (os.access for the effective ids in
place of os.path.exists' stat): the same answer as os.path.exists for every kind of path."""
from __future__ import annotations

import os

import pytest

from ngate.static import index


class _Conf:
    disable_symlinks = None


class _Ctx:
    conf = _Conf()


def _paths(root):
    (root / "file.html").write_bytes(b"x")
    (root / "dir").mkdir()
    os.symlink(root / "file.html", root / "link")
    os.symlink(root / "missing", root / "dangling")
    os.symlink(root / "loop", root / "loop")
    os.mkfifo(root / "fifo")
    return [root / "file.html", root / "dir", root / "dir/", root / "link", root / "dangling",
            root / "loop", root / "fifo", root / "missing", root / "file.html/under",
            root / "missing/under", str(root / "file.html") + "\x00x", "x" * 5000,
            str(root) + "/" + "y" * 300]


@pytest.mark.parametrize("by_access", [True, False])
def test_index_exists_answers_as_os_path_exists(tmp_path, monkeypatch, by_access):
    monkeypatch.setattr(index, "_EXISTS_BY_ACCESS", by_access and index._EXISTS_BY_ACCESS)
    for path in _paths(tmp_path):
        assert index._index_exists(_Ctx(), str(path)) is os.path.exists(path), path


def test_access_is_used_on_linux():
    if not hasattr(os, "supports_effective_ids") or os.name != "posix":
        pytest.skip("posix only")
    assert index._EXISTS_BY_ACCESS == (os.access in os.supports_effective_ids)
