"""Asynchronous checkpoint saves: the snapshot, the background write, failures, exit, memory."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import speedrun
from speedrun import BaseExperiment, CheckpointError, ConfigError
from speedrun.checkpoint._async import AsyncSaver, take_snapshot
from speedrun.checkpoint._files import list_checkpoints
from speedrun.checkpoint._io import load_checkpoint, load_latest_valid, save_checkpoint

_SOURCE_ROOT = str(Path(speedrun.__file__).resolve().parents[1])


class Exp(BaseExperiment):
    pass


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=_SOURCE_ROOT)


# ------------------------------------------------------------------------------------------------
# the snapshot is the state at the call, whatever the training thread does next


def test_snapshot_is_taken_at_the_call_and_later_changes_do_not_leak(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    numpy = pytest.importorskip("numpy")
    experiment = Exp(tmp_path / "RUN")
    torch.manual_seed(0)
    experiment.model = torch.nn.Linear(64, 32)
    experiment.optimizer = torch.optim.Adam(experiment.model.parameters(), lr=0.1)
    experiment.model(torch.randn(4, 64)).sum().backward()
    experiment.optimizer.step()
    experiment.array = numpy.arange(1000.0)
    experiment.history = [1.0, 2.0]
    experiment.tied = {"whole": experiment.model.weight, "row": experiment.model.weight[3]}
    expected_model = {k: v.clone() for k, v in experiment.model.state_dict().items()}
    expected_moments = experiment.optimizer.state_dict()["state"][0]["exp_avg"].clone()
    experiment.next_step()
    random.seed(7)

    experiment.checkpoint(blocking=False)
    # The training thread goes on at once: parameters, optimizer state, arrays, lists, step,
    # and the random generators all change while the save may still be in flight.
    after_snapshot_draw = random.random()
    with torch.no_grad():
        experiment.model.weight.add_(1.0)
        experiment.model.bias.zero_()
    experiment.optimizer.step()
    experiment.array += 1
    experiment.history.append(3.0)
    experiment.next_step()
    experiment.wait_for_checkpoint()

    loaded = load_checkpoint(tmp_path / "RUN" / "Weights" / "checkpoint_iter_1.pt").state
    assert loaded["_step"] == 1
    model = loaded["model"].state_dict()
    assert all(torch.equal(model[k], expected_model[k]) for k in expected_model)
    assert torch.equal(loaded["optimizer"].state_dict()["state"][0]["exp_avg"], expected_moments)
    assert numpy.array_equal(loaded["array"], numpy.arange(1000.0))
    assert loaded["history"] == [1.0, 2.0]
    # storage sharing survives: the row is a view of the saved weight
    assert (
        loaded["tied"]["whole"].untyped_storage().data_ptr()
        == loaded["tied"]["row"].untyped_storage().data_ptr()
    )
    assert torch.equal(loaded["tied"]["row"], expected_model["weight"][3])
    # the random state is the one at the call: restoring it repeats the draw made after it
    random.setstate(loaded["__speedrun_random_state__"]["python"])
    assert random.random() == after_snapshot_draw


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_async_file_loads_like_the_synchronous_one(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {
        "w": torch.randn(100, 10),
        "flag": True,
        "nested": {"t": torch.arange(5)},
        "half": torch.ones(3, dtype=torch.float16),
        # storage sizes that the snapshot copies as 8-, 4- and 1-byte words
        "words8": torch.arange(4, dtype=torch.float16) / 3,
        "words4": torch.arange(6, dtype=torch.float16) / 3,
        "bytes": torch.arange(7, dtype=torch.uint8),
        "empty": torch.empty(0),
        "storage": torch.zeros(4).untyped_storage(),
    }
    save_checkpoint(tmp_path / "sync", 3, state, experiment_class="m.C")
    saver = AsyncSaver()
    saver.save(tmp_path / "async", 3, state, experiment_class="m.C")
    saver.wait()
    sync = load_checkpoint(tmp_path / "sync", 3).state
    done = load_checkpoint(tmp_path / "async", 3).state
    assert sync.keys() == done.keys()
    assert torch.equal(sync["w"], done["w"])
    assert torch.equal(sync["nested"]["t"], done["nested"]["t"])
    assert done["half"].dtype == torch.float16 and done["flag"] is True
    for key in ("half", "words8", "words4", "bytes"):
        assert done[key].dtype == state[key].dtype and torch.equal(done[key], state[key]), key
    assert type(done["storage"]) is type(sync["storage"]) and done["storage"].nbytes() == 16
    assert done["empty"].shape == (0,)


def test_pickle_and_dill_serializers_without_tensors(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    saver = AsyncSaver()
    state = {"a": numpy.ones((3, 3)), "b": [1, "two", {"three": 3.0}]}
    saver.save(tmp_path, 1, state, experiment_class="m.C", serializer="pickle")
    state["a"][0, 0] = 5.0
    saver.wait()
    loaded = load_checkpoint(tmp_path, 1)
    assert loaded.serializer == "pickle" and loaded.state["a"][0, 0] == 1.0
    try:
        import dill  # noqa: F401 - only checks that dill is installed
    except ImportError:
        return
    else:
        saver.save(tmp_path, 2, {"f": lambda x: x + 1}, experiment_class="m.C", serializer="dill")
        saver.wait()
        # a function in a dill file loads only on purpose (safe loading refuses code)
        assert load_checkpoint(tmp_path, 2, trust=True).state["f"](1) == 2


def test_buffers_are_reused_and_hold_one_snapshot(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {"a": torch.randn(256, 256), "b": torch.randn(1000), "view": None}
    state["view"] = state["a"][:10]  # shares a's storage: copied once
    saver = AsyncSaver()
    saver.save(tmp_path, 1, state, experiment_class="m.C")
    saver.wait()
    first = [s.data_ptr() for s in saver._buffers.storages]
    tensor_bytes = state["a"].nbytes + state["b"].nbytes
    assert tensor_bytes <= saver.buffer_bytes < tensor_bytes + 2**16
    state["a"].add_(1)
    saver.save(tmp_path, 2, state, experiment_class="m.C")
    saver.wait()
    assert [s.data_ptr() for s in saver._buffers.storages] == first  # no new allocation
    assert torch.equal(load_checkpoint(tmp_path, 2).state["a"], state["a"])
    saver.release()
    assert saver.buffer_bytes == 0


def test_snapshot_does_not_import_torch_or_numpy() -> None:
    code = (
        "import sys; from speedrun.checkpoint._async import take_snapshot;"
        "take_snapshot({'a': [1, 2]}, 'pickle').materialize();"
        "print('torch' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    ).stdout
    assert out.split() == ["False", "False"]
    assert take_snapshot({"a": (1, 2)}, "pickle").materialize() == {"a": (1, 2)}


# ------------------------------------------------------------------------------------------------
# failures


def test_unpicklable_value_is_raised_at_the_call_and_nothing_is_written(tmp_path: Path) -> None:
    experiment = Exp(tmp_path / "RUN")
    experiment.checkpoint()
    before = sorted(os.listdir(experiment.checkpoint_directory))
    experiment.lock = threading.Lock()
    experiment.next_step()
    with pytest.raises(CheckpointError, match=r"'lock'.*register_unpickleable"):
        experiment.checkpoint(blocking=False)
    assert sorted(os.listdir(experiment.checkpoint_directory)) == before
    experiment.register_unpickleable("lock")
    experiment.checkpoint(blocking=False).wait_for_checkpoint()
    assert load_latest_valid(experiment.checkpoint_directory).step == 1


def _failing_save(experiment: Exp) -> None:
    """A save whose write fails in the background: a folder already has the checkpoint's name."""
    os.makedirs(experiment.checkpoint_path)
    experiment.checkpoint(blocking=False)
    experiment._checkpoint_saver._thread.join()  # the failure is stored, not yet raised


def test_background_failure_is_raised_at_next_step_with_its_cause(tmp_path: Path) -> None:
    experiment = Exp(tmp_path / "RUN")
    experiment.total = 1
    experiment.checkpoint()  # step 0: the valid checkpoint that must stay
    experiment.next_step()
    _failing_save(experiment)
    with pytest.raises(CheckpointError, match="background save of checkpoint step 1") as info:
        experiment.next_step()
    assert isinstance(info.value.__cause__, CheckpointError)
    assert "a non-file (folder or device) already has that name" in str(info.value.__cause__)
    experiment.next_step()  # raised once: the run may catch it and go on
    # the folder in the checkpoint's place is not this run's: ignored with a warning
    with pytest.warns(UserWarning, match="this run did not write it"):
        assert load_latest_valid(experiment.checkpoint_directory).step == 0


def test_background_failure_is_raised_at_the_next_checkpoint(tmp_path: Path) -> None:
    experiment = Exp(tmp_path / "RUN")
    experiment.set("training/checkpoint_every", 5)
    _failing_save(experiment)
    with pytest.raises(CheckpointError, match="background save") as info:
        experiment.checkpoint(force=False)  # even when this step saves nothing
    assert info.value.__cause__ is not None


def test_background_disk_failure_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """A real write error (file size limit: EFBIG) in the background thread of a real process."""
    script = textwrap.dedent("""
        import json, resource, signal, sys
        sys.modules["torch"] = None  # pickle files: no torch start-up in this process
        from speedrun import BaseExperiment, CheckpointError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        experiment = BaseExperiment(sys.argv[1])
        experiment.payload = b"x" * 1000
        experiment.checkpoint(blocking=False).wait_for_checkpoint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        experiment.payload = b"y" * 1_000_000
        experiment.next_step().checkpoint(blocking=False)
        try:
            experiment.wait_for_checkpoint()
        except CheckpointError as error:
            cause, errno = error.__cause__, None
            link = cause
            while link is not None and errno is None:  # the OSError in the original's chain
                errno = getattr(link, "errno", None)
                link = link.__cause__ or link.__context__
            print(json.dumps({"message": str(error), "cause": type(cause).__name__,
                              "errno": errno}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "RUN")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "background save of checkpoint step 1" in report["message"]
    assert "File too large" in report["message"] and report["cause"] == "CheckpointError"
    assert report["errno"] == 27  # EFBIG, the original OSError at the end of the chain
    latest = load_latest_valid(tmp_path / "RUN" / "Weights")
    assert latest.step == 0 and latest.state["payload"] == b"x" * 1000
    assert sorted(os.listdir(tmp_path / "RUN" / "Weights")) == [
        ".speedrun-checkpoints.json",
        "checkpoint_iter_0.pt",
    ]  # + the run's checkpoint record


def test_run_waits_for_the_pending_save_and_raises_its_failure(tmp_path: Path) -> None:
    class Train(BaseExperiment):
        def train(self) -> None:
            self.next_step()
            _failing_save(self)

    experiment = Train(tmp_path / "RUN")
    experiment.set_default_dispatch("train")
    with pytest.raises(CheckpointError, match="background save of checkpoint step 1"):
        experiment.run()

    class Good(BaseExperiment):
        def train(self) -> None:
            self.big = bytearray(20_000_000)
            self.next_step().checkpoint(blocking=False)

    experiment = Good(tmp_path / "GOOD")
    experiment.set_default_dispatch("train")
    experiment.run()
    assert not experiment._checkpoint_saver.pending
    assert load_latest_valid(experiment.checkpoint_directory).step == 1


def test_config_switch(tmp_path: Path) -> None:
    experiment = Exp(tmp_path / "RUN")
    experiment.checkpoint()
    assert experiment._checkpoint_saver is None  # synchronous by default
    experiment.set("training/checkpoint_async", True).next_step().checkpoint()
    assert isinstance(experiment._checkpoint_saver, AsyncSaver)
    experiment.wait_for_checkpoint()
    assert [step for step, _ in list_checkpoints(experiment.checkpoint_directory)] == [0, 1]
    experiment.set("training/checkpoint_async", "sometimes")
    with pytest.raises(ConfigError, match="'training/checkpoint_async' .* expects true or false"):
        experiment.checkpoint()


# ------------------------------------------------------------------------------------------------
# exit


def test_interpreter_exit_waits_for_the_pending_save(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # pickle files: no torch start-up in this process
        from speedrun import BaseExperiment
        experiment = BaseExperiment(sys.argv[1])
        experiment.payload = bytes(range(256)) * 200_000  # 51 MB: the write outlives the script
        experiment.next_step().checkpoint(blocking=False)
        print("pending" if experiment._checkpoint_saver.pending else "done", flush=True)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "RUN")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pending"  # the script ended while the write was running
    latest = load_latest_valid(tmp_path / "RUN" / "Weights")
    assert latest.step == 1 and latest.state["payload"] == bytes(range(256)) * 200_000


def test_an_uncollected_failure_is_printed_at_exit(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os, sys
        sys.modules["torch"] = None  # pickle files: no torch start-up in this process
        from speedrun import BaseExperiment
        experiment = BaseExperiment(sys.argv[1])
        os.makedirs(experiment.checkpoint_path)
        experiment.checkpoint(blocking=False)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "RUN")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert "the background save of checkpoint step 0 in" in result.stderr
    assert "already has that name" in result.stderr


# ------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)


def test_cuda_tensors_go_through_pinned_buffers_and_load_back_on_the_gpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = torch.nn.Linear(512, 512).cuda()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 512, device="cuda")).sum().backward()
    optimizer.step()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    state = {"model": model, "optimizer": optimizer, "cpu": torch.arange(4)}
    saver = AsyncSaver()
    for step in (1, 2):  # the second save reuses the pinned buffers
        saver.save(tmp_path, step, state, experiment_class="m.C")
        with torch.no_grad():  # queued on the training stream right after the snapshot
            for parameter in model.parameters():
                parameter.mul_(0).add_(step)
        saver.wait()
        loaded = load_checkpoint(tmp_path, step).state
        got = loaded["model"].state_dict()
        assert all(got[k].device.type == "cuda" for k in got)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
        assert loaded["cpu"].device.type == "cpu"
        expected = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(
        buffer.is_pinned()
        for buffer, pinned in zip(saver._buffers.storages, saver._buffers.pinned, strict=True)
        if pinned
    )
    assert any(saver._buffers.pinned)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: Linux only")
def test_the_writer_thread_yields_the_cpu_to_training() -> None:
    from speedrun.checkpoint._async import WRITER_NICENESS

    seen: list[int] = []

    def job() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    saver = AsyncSaver()
    saver.submit("a job", job)
    saver.wait()
    assert seen == [min(19, base + WRITER_NICENESS)]
    # the training thread keeps its priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
