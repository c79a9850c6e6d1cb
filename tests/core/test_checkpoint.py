"""Tests of speedrun.checkpoint._files: atomic saves, discovery, loads, retention, serializers."""

from __future__ import annotations

import errno
import importlib
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

# These tests exercise every serializer; with speedrun-core alone (pickle only),
# tests/core/test_experiment_checkpoint.py covers checkpoints through BaseExperiment.
torch = pytest.importorskip("torch")
dill = pytest.importorskip("dill")
import speedrun.checkpoint._files
import speedrun.directory._fs
from speedrun._errors import CheckpointError
from speedrun.checkpoint._files import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    Checkpoint,
    checkpoint_file_name,
    class_path,
    find_checkpoint,
    list_checkpoints,
    prune_checkpoints,
)
from speedrun.checkpoint._io import load_checkpoint, load_latest_valid, save_checkpoint

_SOURCE_ROOT = str(Path(speedrun.__file__).resolve().parents[1])
CLS = "train.MyExperiment"


def _save(folder: Path, step: int, **kwargs) -> Path:
    state = kwargs.pop("state", {"step_value": step, "weights": torch.full((16,), float(step))})
    return save_checkpoint(folder, step, state, experiment_class=kwargs.pop("cls", CLS), **kwargs)


def _temp_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=_SOURCE_ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


# ---------------------------------------------------------------------------------------------
# names and arguments


def test_file_name_and_class_path():
    assert checkpoint_file_name(0) == "checkpoint_iter_0.pt"
    assert checkpoint_file_name(1200) == "checkpoint_iter_1200.pt"
    assert class_path(Checkpoint) == "speedrun.checkpoint._files.Checkpoint"
    assert class_path(Path("x")) == f"{type(Path('x')).__module__}.{type(Path('x')).__qualname__}"


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_bad_step_is_refused(tmp_path, bad):
    with pytest.raises(CheckpointError, match="non-negative int"):
        save_checkpoint(tmp_path, bad, {}, experiment_class=CLS)
    assert os.listdir(tmp_path) == []


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="dict of attribute names"):
        save_checkpoint(tmp_path, 1, [1, 2], experiment_class=CLS)
    with pytest.raises(CheckpointError, match="module.QualName"):
        save_checkpoint(tmp_path, 1, {}, experiment_class="")
    with pytest.raises(CheckpointError, match="positive int"):
        save_checkpoint(tmp_path, 1, {}, experiment_class=CLS, keep=0)
    with pytest.raises(CheckpointError, match="one of torch, dill, pickle"):
        save_checkpoint(tmp_path, 1, {}, experiment_class=CLS, serializer="json")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# round trips


def _trained_objects():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(3):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def test_models_optimizers_schedulers_tensors_round_trip(tmp_path):
    model, optimizer, scheduler = _trained_objects()
    state = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "optimizer_state": optimizer.state_dict(),
        "tensor": torch.arange(10, dtype=torch.float64),
        "_step": 3,
        "config": {"training": {"lr": 0.01}, "tags": ["a", "b"]},
    }
    path = save_checkpoint(tmp_path / "Weights", 3, state, experiment_class=CLS)
    assert path == tmp_path / "Weights" / "checkpoint_iter_3.pt"
    loaded = load_checkpoint(path, experiment_class=CLS)
    assert (loaded.step, loaded.path, loaded.experiment_class, loaded.serializer) == (
        3,
        path,
        CLS,
        "torch",
    )
    assert not loaded.legacy
    restored = loaded.state
    for name, tensor in model.state_dict().items():
        assert torch.equal(restored["model"].state_dict()[name], tensor)
    # The optimizer restored as an object still steps the restored model's parameters.
    assert restored["optimizer"].param_groups[0]["params"][0] is next(
        restored["model"].parameters()
    )
    saved_opt, loaded_opt = optimizer.state_dict(), restored["optimizer"].state_dict()
    assert saved_opt["param_groups"] == loaded_opt["param_groups"]
    for key, entry in saved_opt["state"].items():
        for name, value in entry.items():
            assert torch.equal(
                torch.as_tensor(loaded_opt["state"][key][name]), torch.as_tensor(value)
            )
    assert restored["scheduler"].state_dict()["last_epoch"] == 3
    assert restored["scheduler"].get_last_lr() == scheduler.get_last_lr()
    assert torch.equal(restored["tensor"], state["tensor"])
    assert restored["tensor"].dtype == torch.float64
    assert restored["_step"] == 3 and restored["config"] == state["config"]


def test_envelope_is_a_plain_torch_file(tmp_path):
    path = _save(tmp_path, 7)
    with open(path, "rb") as handle:
        assert handle.read(4) == b"PK\x03\x04"
    raw = torch.load(path, weights_only=False)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["version"] == CHECKPOINT_VERSION
    assert raw["experiment_class"] == CLS and raw["step"] == 7 and raw["serializer"] == "torch"
    assert torch.equal(raw["state"]["weights"], torch.full((16,), 7.0))


def test_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = _save(tmp_path, 1)
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777) == 0o644


@pytest.mark.parametrize("serializer", ["dill", "pickle"])
def test_pickle_family_serializers_record_themselves(tmp_path, serializer):
    state = {"tensor": torch.ones(3), "numbers": list(range(5))}
    path = save_checkpoint(tmp_path, 2, state, experiment_class=CLS, serializer=serializer)
    with open(path, "rb") as handle:
        header = pickle.load(handle)  # a plain pickle reader sees the header first
    assert header == {
        "format": "speedrun-checkpoint-header",
        "version": 1,
        "serializer": serializer,
    }
    loaded = load_checkpoint(path)
    assert loaded.serializer == serializer and loaded.step == 2
    assert torch.equal(loaded.state["tensor"], torch.ones(3)) and loaded.state["numbers"] == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_dill_serializer_keeps_lambdas(tmp_path):
    path = save_checkpoint(
        tmp_path, 1, {"f": lambda x: x * 3}, experiment_class=CLS, serializer="dill"
    )
    # A lambda is code: only full unpickling, asked for explicitly, rebuilds it.
    with pytest.raises(CheckpointError, match=r"(?s)dill\._dill\._create_\w+.*trust=True"):
        load_checkpoint(path)
    assert load_checkpoint(path, trust=True).state["f"](2) == 6


_FALLBACK = """
    import sys
    sys.modules["torch"] = None  # torch is not installed here
    if sys.argv[2] == "nodill":
        sys.modules["dill"] = None
    from speedrun.checkpoint._io import save_checkpoint, load_checkpoint
    path = save_checkpoint(sys.argv[1], 4, {"values": [1.5, 2.5], "name": "run"},
                           experiment_class="train.MyExperiment")
    loaded = load_checkpoint(path)
    assert loaded.state == {"values": [1.5, 2.5], "name": "run"}, loaded.state
    print(loaded.serializer)
"""


@pytest.mark.parametrize(("mode", "expected"), [("dill", "dill"), ("nodill", "pickle")])
def test_without_torch_falls_back_to_dill_then_pickle(tmp_path, mode, expected):
    result = _run_python(_FALLBACK, str(tmp_path), mode)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
    # ...and a process with torch reads it with the reader that matches the writer.
    loaded = load_checkpoint(tmp_path / "checkpoint_iter_4.pt", experiment_class=CLS)
    assert loaded.serializer == expected and loaded.state["values"] == [1.5, 2.5]


def test_torch_file_without_torch_names_the_install(tmp_path):
    path = _save(tmp_path, 3)
    result = _run_python(
        """
        import sys
        sys.modules["torch"] = None
        from speedrun.checkpoint._io import load_checkpoint
        try:
            load_checkpoint(sys.argv[1])
        except ImportError as exc:
            print("ImportError:", exc)
        """,
        str(path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"ImportError: Checkpoint {path}, written by torch.save, needs torch, which is not "
        "installed. Fix: pip install torch"
    )


def test_legacy_torch_file_without_torch_names_the_install(tmp_path, monkeypatch):
    # torch's pre-1.6 format is a pickle stream: the missing library must not be mistaken for
    # code that cannot be imported (a CheckpointError) while the stream is read.
    path = tmp_path / "checkpoint_iter_2.pt"
    torch.save({"step": 2}, path, _use_new_zipfile_serialization=False)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError) as caught:
        load_checkpoint(path)
    assert not isinstance(caught.value, CheckpointError)
    assert str(caught.value) == (
        f"Checkpoint {path}, written by torch.save, needs torch, which is not installed. "
        "Fix: pip install torch"
    )


def test_dill_file_without_dill_names_the_install(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path, 1, {"x": 1}, experiment_class=CLS, serializer="dill")
    monkeypatch.setitem(sys.modules, "dill", None)
    with pytest.raises(ImportError) as caught:
        load_checkpoint(path)
    assert not isinstance(caught.value, CheckpointError)
    assert str(caught.value) == (
        f"Checkpoint {path}, written with dill, needs dill, which is not installed. "
        "Fix: pip install dill"
    )
    with pytest.raises(
        ImportError,
        match=r"^The 'dill' checkpoint serializer needs dill, which is not installed\. "
        r"Fix: pip install dill$",
    ):
        save_checkpoint(tmp_path, 2, {"x": 2}, experiment_class=CLS, serializer="dill")


def test_map_location_is_passed_to_torch(tmp_path):
    path = _save(tmp_path, 1)
    loaded = load_checkpoint(path, map_location="meta")
    assert loaded.state["weights"].device.type == "meta"


# ---------------------------------------------------------------------------------------------
# class checks and foreign files


def test_class_mismatch_names_both_classes(tmp_path):
    path = _save(tmp_path, 5)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, experiment_class="other.OtherExperiment")
    message = str(info.value)
    assert CLS in message and "other.OtherExperiment" in message and "strict_class=False" in message
    loaded = load_checkpoint(path, experiment_class="other.OtherExperiment", strict_class=False)
    assert loaded.step == 5 and loaded.experiment_class == CLS
    # A mismatch is not corruption: the latest-valid search does not skip past it.
    with pytest.raises(CheckpointError, match="other.OtherExperiment"):
        load_latest_valid(tmp_path, experiment_class="other.OtherExperiment")


def test_script_class_matches_its_module_name(tmp_path):
    path = _save(tmp_path, 1, cls="__main__.MyExperiment")
    assert load_checkpoint(path, experiment_class="train.MyExperiment").step == 1
    assert load_checkpoint(path, experiment_class="MyExperiment").step == 1
    with pytest.raises(CheckpointError, match="strict_class"):
        load_checkpoint(path, experiment_class="train.NotMyExperiment")


def test_not_a_speedrun_checkpoint(tmp_path):
    text = tmp_path / "checkpoint_iter_1.pt"
    text.write_text("hello, I am a text file\n")
    with pytest.raises(CheckpointError, match="not a speedrun checkpoint.*starts with bytes"):
        load_checkpoint(text)
    bare = tmp_path / "checkpoint_iter_2.pt"
    torch.save({"weight": torch.ones(2)}, bare)  # a state_dict saved by hand under our name
    with pytest.raises(
        CheckpointError, match="not a speedrun checkpoint.*format='speedrun-checkpoint'"
    ):
        load_checkpoint(bare)
    assert text.read_text() == "hello, I am a text file\n"


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "checkpoint_iter_3.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 99, "step": 3, "state": {}}, path)
    with pytest.raises(CheckpointError, match="version 99.*Upgrade speedrun-core"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="version 99"):
        load_latest_valid(tmp_path)  # not skipped: an older file would silently lose work


def test_original_speedrun_checkpoints_are_found_and_loaded(tmp_path):
    # The original speedrun saved the experiment's attribute dict with dill as pickle module.
    legacy = tmp_path / "ckpt_iter_40.pt"
    torch.save({"_step": 40, "weights": torch.ones(3)}, legacy, pickle_module=dill)
    shutil.copy(legacy, tmp_path / "ckpt_iter_30.pt")
    # A folder without a checkpoint record counts every file; the first save records them.
    _save(tmp_path, 30)
    assert list_checkpoints(tmp_path)[1:] == [
        (30, tmp_path / "checkpoint_iter_30.pt"),
        (40, legacy),
    ]
    loaded = load_latest_valid(tmp_path, experiment_class=CLS)
    assert loaded.legacy and loaded.step == 40 and loaded.experiment_class is None
    assert loaded.state["_step"] == 40 and torch.equal(loaded.state["weights"], torch.ones(3))
    # For one step, the new name counts as newer than the original's.
    assert [p.name for _, p in list_checkpoints(tmp_path)] == [
        "ckpt_iter_30.pt",
        "checkpoint_iter_30.pt",
        "ckpt_iter_40.pt",
    ]


def test_discovery_ignores_foreign_and_temp_files(tmp_path):
    _save(tmp_path, 2)
    _save(tmp_path, 10)
    for name in [
        "model_best.pt",
        "checkpoint_iter_x.pt",
        "checkpoint_iter_007.pt",
        "checkpoint_iter_5.pth",
        "notes.txt",
        ".checkpoint_iter_11.pt.abc123.tmp",
        "checkpoint_iter_-1.pt",
    ]:
        (tmp_path / name).write_bytes(b"foreign")
    assert list_checkpoints(tmp_path) == [
        (2, tmp_path / "checkpoint_iter_2.pt"),
        (10, tmp_path / "checkpoint_iter_10.pt"),
    ]
    assert list_checkpoints(tmp_path / "missing") == []
    with pytest.raises(CheckpointError, match="Expected a checkpoint folder, got a file"):
        list_checkpoints(tmp_path / "notes.txt")


def test_explicit_missing_step_lists_the_existing_ones(tmp_path):
    for step in (10, 20, 30):
        _save(tmp_path, step)
    assert find_checkpoint(tmp_path, 20) == tmp_path / "checkpoint_iter_20.pt"
    with pytest.raises(CheckpointError, match=r"step 25 .*Steps with checkpoints: 10, 20, 30"):
        find_checkpoint(tmp_path, 25)
    with pytest.raises(CheckpointError, match=r"Steps with checkpoints: 10, 20, 30"):
        load_checkpoint(tmp_path, 25)
    with pytest.raises(CheckpointError, match="Steps with checkpoints: none"):
        load_checkpoint(tmp_path / "empty", 3)
    assert load_checkpoint(tmp_path, 20).step == 20
    assert load_checkpoint(tmp_path).step == 30
    with pytest.raises(CheckpointError, match="a folder with a step"):
        load_checkpoint(tmp_path / "checkpoint_iter_20.pt", 20)


# ---------------------------------------------------------------------------------------------
# atomicity and failures


def test_save_replaces_atomically_and_leaves_no_temp_file(tmp_path):
    first = _save(tmp_path, 1, state={"v": torch.zeros(4)})
    again = _save(tmp_path, 1, state={"v": torch.ones(4)})  # same step: replaced whole
    assert first == again and _temp_files(tmp_path) == []
    assert torch.equal(load_checkpoint(again).state["v"], torch.ones(4))


def test_leftover_temp_files_are_removed_by_the_next_save(tmp_path):
    _save(tmp_path, 1)
    stale = tmp_path / ".checkpoint_iter_2.pt.k3j4h5g6.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    old = time.time() - 60
    os.utime(stale, (old, old))
    foreign = tmp_path / ".hidden.tmp"
    foreign.write_bytes(b"not ours")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [1]
    assert load_latest_valid(tmp_path).step == 1
    _save(tmp_path, 3)
    assert not stale.exists() and foreign.exists()


def test_unpicklable_attributes_are_named_and_nothing_is_lost(tmp_path):
    good = _save(tmp_path, 1)
    before = good.read_bytes()
    handle = open(tmp_path / "log.txt", "w")
    try:
        state = {"weights": torch.ones(1000), "log_file": handle, "loss_fn": lambda x: x, "lr": 0.1}
        with pytest.raises(CheckpointError) as info:
            save_checkpoint(tmp_path, 2, state, experiment_class=CLS)
    finally:
        handle.close()
    message = str(info.value)
    assert "'log_file'" in message and "'loss_fn'" in message
    assert "register_unpickleable('log_file', 'loss_fn')" in message
    assert "'weights'" not in message and "'lr'" not in message
    assert good.read_bytes() == before
    assert not (tmp_path / "checkpoint_iter_2.pt").exists() and _temp_files(tmp_path) == []
    assert [step for step, _ in list_checkpoints(tmp_path)] == [1]


def test_single_unpicklable_attribute_message(tmp_path):
    import threading

    with pytest.raises(
        CheckpointError,
        match=r"attribute 'lock' cannot be pickled.*register_unpickleable\('lock'\)",
    ):
        save_checkpoint(tmp_path, 1, {"lock": threading.Lock()}, experiment_class=CLS)
    assert os.listdir(tmp_path) == []


def test_saving_onto_a_folder_is_refused(tmp_path):
    blocker = tmp_path / "checkpoint_iter_4.pt"
    blocker.mkdir()
    (blocker / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="non-file .* already has that name"):
        _save(tmp_path, 4)
    assert (blocker / "keep.txt").read_text() == "mine" and _temp_files(tmp_path) == []


def test_disk_full_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    good = _save(tmp_path, 1)
    before = good.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(speedrun.directory._fs.os, "fsync", full_disk)
    for step in (1, 2):  # replacing the same step, and writing a new one
        with pytest.raises(CheckpointError, match=r"No space left on device \(ENOSPC\).*intact"):
            _save(tmp_path, step)
    monkeypatch.undo()
    assert good.read_bytes() == before and _temp_files(tmp_path) == []
    assert [step for step, _ in list_checkpoints(tmp_path)] == [1]


@pytest.fixture
def tiny_disk(tmp_path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({result.stderr.strip()}); covered by the monkeypatch test"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_real_full_disk_keeps_previous_checkpoint(tiny_disk):
    good = _save(tiny_disk, 1, state={"w": torch.ones(1000)})
    before = good.read_bytes()
    with pytest.raises(
        CheckpointError, match=r"No space left on device \(ENOSPC\).*Free disk space"
    ):
        _save(tiny_disk, 2, state={"w": torch.ones(1_000_000)})  # 4 MB onto a 1 MB disk
    with pytest.raises(CheckpointError, match="ENOSPC"):
        _save(tiny_disk, 1, state={"w": torch.ones(1_000_000)})  # overwriting the good one
    assert good.read_bytes() == before and _temp_files(tiny_disk) == []
    assert load_latest_valid(tiny_disk).step == 1


# ---------------------------------------------------------------------------------------------
# latest valid


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_latest_valid_skips_broken_files_with_warnings(tmp_path):
    for step in (1, 2):
        _save(tmp_path, step)
    for step, fraction in ((3, 0.5), (4, 0.99)):
        _truncate(_save(tmp_path, step), fraction)
    (tmp_path / "checkpoint_iter_5.pt").write_bytes(b"\x80\x04garbage-not-a-pickle")
    (tmp_path / "checkpoint_iter_6.pt").write_bytes(b"")
    (tmp_path / "checkpoint_iter_7.pt").mkdir()
    os.mkfifo(tmp_path / "checkpoint_iter_8.pt")  # opening it would block: must not be opened
    os.symlink(tmp_path / "gone.pt", tmp_path / "checkpoint_iter_9.pt")
    os.symlink("checkpoint_iter_10.pt", tmp_path / "checkpoint_iter_10.pt")  # ELOOP on open
    save_checkpoint(tmp_path, 11, {"x": 1}, experiment_class=CLS, serializer="pickle")
    _truncate(tmp_path / "checkpoint_iter_11.pt", 0.7)
    # Without its record (a folder of an older speedrun), every file with a checkpoint name
    # counts, and each broken one is skipped.
    (tmp_path / ".speedrun-checkpoints.json").unlink()
    with pytest.warns(UserWarning) as record:
        loaded = load_latest_valid(tmp_path, experiment_class=CLS)
    assert loaded.step == 2 and torch.equal(loaded.state["weights"], torch.full((16,), 2.0))
    messages = [str(w.message) for w in record]
    assert len(messages) == 9
    expectations = {
        11: "truncated or corrupt",
        10: "cannot read",
        9: "dangling symlink",
        8: "not a regular file",
        7: "is a folder",
        6: "is empty",
        5: "truncated or corrupt",
        4: "truncated or corrupt",
        3: "truncated or corrupt",
    }
    for message, (step, reason) in zip(messages, expectations.items(), strict=True):
        assert f"checkpoint_iter_{step}.pt" in message and reason in message, message
    # Nothing was deleted or changed.
    assert len(list_checkpoints(tmp_path)) == 11 and (tmp_path / "checkpoint_iter_7.pt").is_dir()


def test_latest_valid_with_nothing_to_load(tmp_path):
    assert load_latest_valid(tmp_path) is None
    assert load_latest_valid(tmp_path / "missing") is None
    with pytest.raises(CheckpointError, match="No checkpoint in"):
        load_checkpoint(tmp_path)
    _truncate(_save(tmp_path, 1), 0.5)
    (tmp_path / "checkpoint_iter_2.pt").write_text("foreign")
    (tmp_path / ".speedrun-checkpoints.json").unlink()  # every file counts (older speedrun)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError) as info:
            load_latest_valid(tmp_path)
    message = str(info.value)
    assert "None of the 2 checkpoint files" in message
    assert "checkpoint_iter_1.pt" in message and "checkpoint_iter_2.pt" in message
    assert (tmp_path / "checkpoint_iter_1.pt").exists() and (
        tmp_path / "checkpoint_iter_2.pt"
    ).exists()


def test_missing_code_is_not_mistaken_for_corruption(tmp_path, monkeypatch):
    module_dir = tmp_path / "code"
    module_dir.mkdir()
    (module_dir / "speedrun_ckpt_probe_mod.py").write_text("class Thing:\n    value = 1\n")
    monkeypatch.syspath_prepend(str(module_dir))
    module = importlib.import_module("speedrun_ckpt_probe_mod")
    folder = tmp_path / "Weights"
    _save(folder, 1)
    save_checkpoint(folder, 2, {"thing": module.Thing()}, experiment_class=CLS)
    (module_dir / "speedrun_ckpt_probe_mod.py").unlink()
    monkeypatch.delitem(sys.modules, "speedrun_ckpt_probe_mod")
    importlib.invalidate_caches()
    with pytest.raises(CheckpointError, match="cannot be imported now.*speedrun_ckpt_probe_mod"):
        load_latest_valid(folder)  # does not fall back to step 1 and silently lose step 2


# ---------------------------------------------------------------------------------------------
# retention


def test_retention_keeps_newest_and_spares_foreign_files(tmp_path):
    foreign = ["model_best.pt", "checkpoint_iter_x.pt", "notes.txt", "checkpoint_iter_01.pt"]
    for name in foreign:
        (tmp_path / name).write_text("user data")
    (tmp_path / "checkpoint_iter_0.pt").mkdir()  # named like ours, but a folder: never deleted
    for step in range(1, 7):
        _save(tmp_path, step, keep=3)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [0, 4, 5, 6]
    for name in foreign:
        assert (tmp_path / name).read_text() == "user data"
    assert (tmp_path / "checkpoint_iter_0.pt").is_dir()


def test_retention_never_deletes_the_file_just_written(tmp_path):
    for step in (10, 20, 30):
        _save(tmp_path, step)
    path = _save(tmp_path, 5, keep=1)  # resumed from an earlier step
    assert list_checkpoints(tmp_path) == [(5, path)]
    for step in (10, 20, 30):
        _save(tmp_path, step)
    _save(tmp_path, 5, keep=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [5, 30]


def test_retention_counts_original_speedrun_files_and_keep_none_keeps_all(tmp_path):
    torch.save({"_step": 1}, tmp_path / "ckpt_iter_1.pt")
    for step in (2, 3, 4):
        _save(tmp_path, step)
    assert len(list_checkpoints(tmp_path)) == 4
    deleted = prune_checkpoints(tmp_path, 2)
    assert deleted == [tmp_path / "ckpt_iter_1.pt", tmp_path / "checkpoint_iter_2.pt"]
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4]
    with pytest.raises(CheckpointError, match="positive int"):
        prune_checkpoints(tmp_path, -1)
