import os
import stat

import pytest

from speedrun.directory._fs import atomic_open, atomic_write_bytes, atomic_write_text


def test_write_replaces_whole_file_with_plain_permissions(tmp_path):
    target = tmp_path / "config.yml"
    target.write_text("old")
    atomic_write_text(target, "new: 1\n")
    assert target.read_text() == "new: 1\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["config.yml"]


def test_failure_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "config.yml"
    target.write_text("precious")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "precious"
    assert os.listdir(tmp_path) == ["config.yml"]


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="expected a 'w' mode, got 'r'"):
        with atomic_open(tmp_path / "x", "r"):
            pass


def test_keep_previous_version_moves_aside_with_the_files_time(tmp_path):
    from speedrun.directory._fs import keep_previous_version

    assert keep_previous_version(tmp_path / "missing.yml") is None
    config = tmp_path / "train_config.yml"
    for text in ("one", "two"):
        config.write_text(text)
        os.utime(config, (1_700_000_000, 1_700_000_000))
        moved = keep_previous_version(config)
        assert not config.exists() and os.path.dirname(moved) == str(tmp_path / "previous")
    kept = sorted(os.listdir(tmp_path / "previous"))
    stamp = kept[-1][len("train_config.") : -len(".yml")]
    assert stamp.startswith("2023") and kept == [
        f"train_config.{stamp}-1.yml",
        f"train_config.{stamp}.yml",
    ]
    assert sorted((tmp_path / "previous" / name).read_text() for name in kept) == ["one", "two"]
