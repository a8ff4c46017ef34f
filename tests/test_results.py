"""Result files are written atomically and get the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat

import pytest

from samplerlab.results import atomic_write, current_umask


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_an_atomically_written_file_keeps_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    for name, data in (("metrics.csv", "a,b\n"), ("metrics.parquet", b"PAR1")):
        atomic_write(tmp_path / name, data)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    atomic_write(tmp_path / "metrics.csv", "a,b\n1,2\n")  # replacing keeps it too
    assert stat.S_IMODE((tmp_path / "metrics.csv").stat().st_mode) == mode
    assert (tmp_path / "metrics.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.parquet"]
