"""TensorboardMixin, read back with TensorBoard's own EventAccumulator (no mocks)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from speedrun import BaseExperiment, ConfigError, ExperimentDirectoryError
from speedrun.ext import ImageError
from speedrun.mixins.tensorboard import TensorboardMixin

KEEP_ALL = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0, "distributions": 0}


class Experiment(TensorboardMixin, BaseExperiment):
    def train(self, steps=3, fail_at=None):
        for _ in range(steps):
            if self.step == fail_at:
                raise RuntimeError("boom")
            self.log_scalar("loss", 1.0 / (self.step + 1))
            self.next_step()


@pytest.fixture
def exp(tmp_path):
    experiment = Experiment(str(tmp_path / "RUN-0"))
    yield experiment
    experiment.execute_hooks("clean_up")


def read(experiment_or_dir):
    directory = getattr(experiment_or_dir, "log_directory", experiment_or_dir)
    accumulator = EventAccumulator(str(directory), size_guidance=KEEP_ALL)
    accumulator.Reload()
    return accumulator


def scalars(accumulator, tag):
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def event_files(experiment):
    return sorted(name for name in os.listdir(experiment.log_directory) if "tfevents" in name)


# -- the writer --------------------------------------------------------------------------------
def test_logger_is_created_on_first_use_in_logs(exp):
    from tensorboardX import SummaryWriter

    assert "_tensorboard_writer" not in exp.__dict__
    assert event_files(exp) == []
    writer = exp.logger
    assert isinstance(writer, SummaryWriter)
    assert writer.logdir == exp.log_directory
    assert exp.logger is writer
    assert len(event_files(exp)) == 1


def test_writer_never_goes_into_checkpoints(exp, tmp_path):
    exp.log_scalar("loss", 1.0)
    with exp.set_tagscope("train"):
        exp.checkpoint()  # a SummaryWriter holds threads and locks: pickling it would fail
    restored = Experiment(exp.experiment_directory)
    restored.load_from_checkpoint()
    assert restored._tensorboard_writer is None
    assert restored.tagscope == ""  # the scope of the saving process is not restored
    restored.log_scalar("loss", 2.0)
    restored.execute_hooks("clean_up")


def test_without_directory_the_error_says_what_to_do():
    experiment = Experiment()
    with pytest.raises(ExperimentDirectoryError, match="experiment_directory"):
        experiment.log_scalar("loss", 1.0)


def test_clean_up_closes_and_a_later_log_appends_to_the_same_file(exp):
    exp.log_scalar("loss", 1.0)
    exp.execute_hooks("clean_up")
    assert exp._tensorboard_events.closed and exp.logger.file_writer is not None
    assert scalars(read(exp), "loss") == [(0, 1.0)]
    exp.next_step().log_scalar("loss", 2.0)
    exp.execute_hooks("clean_up")
    assert len(event_files(exp)) == 1  # one event file per run and process
    assert scalars(read(exp), "loss") == [(0, 1.0), (1, 2.0)]


def test_a_writer_closed_by_hand_is_replaced_not_reused(exp):
    exp.log_scalar("loss", 1.0)
    exp.logger.close()
    exp.next_step().log_scalar("loss", 2.0)
    exp.next_step().logger.add_scalar("raw", 3.0, 2)
    exp.logger.close()
    exp.logger.add_scalar("raw", 4.0, 3)  # tensorboardX's own methods reopen it too
    exp.execute_hooks("clean_up")
    assert len(event_files(exp)) == 1
    accumulator = read(exp)
    assert scalars(accumulator, "loss") == [(0, 1.0), (1, 2.0)]
    assert scalars(accumulator, "raw") == [(2, 3.0), (3, 4.0)]


def test_run_closes_the_writer_even_on_errors(tmp_path):
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.set_default_dispatch("train")
    with pytest.raises(RuntimeError, match="boom"):
        experiment.run(steps=5, fail_at=3)
    assert experiment._tensorboard_events.closed
    assert [step for step, _ in scalars(read(experiment), "loss")] == [0, 1, 2]


def test_legacy_import_and_entry_point():
    import speedrun

    assert speedrun.TensorboardMixin is TensorboardMixin
    (entry,) = [e for e in entry_points(group="speedrun.mixins") if e.name == "tensorboard"]
    assert entry.load() is TensorboardMixin


def test_import_is_light():
    code = (
        "import sys, speedrun.mixins.tensorboard; "
        "print(sorted(m for m in ('torch', 'numpy', 'tensorboardX', 'matplotlib', 'PIL') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("variable", ["RANK", "SLURM_PROCID"])
def test_only_rank_zero_writes(tmp_path, monkeypatch, variable):
    Experiment(str(tmp_path / "RUN-0"))  # rank 0 creates the directory
    monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("WORLD_SIZE" if variable == "RANK" else "SLURM_NTASKS", "2")
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.log_scalar("loss", 1.0).log_scalars({"a": 1}).log_text("t", "x")
    experiment.log_image("i", np.zeros((4, 4))).log_histogram("h", np.ones(3))
    experiment.log_embedding("e", np.zeros((3, 2)))
    experiment.log_hparams({"m": 1.0}).dump_logs_to_json()
    experiment.execute_hooks("clean_up")
    assert os.listdir(experiment.log_directory) == []


# -- scalars and tags --------------------------------------------------------------------------
def test_scalars_round_trip_with_default_and_explicit_steps(exp):
    torch = pytest.importorskip("torch")

    exp.log_scalar("loss", 0.5)
    exp.next_step().log_scalar("loss", np.float32(0.25))
    exp.next_step().log_scalar("loss", torch.tensor(0.125, requires_grad=True) * 1)
    exp.log_scalar("loss", np.array([7]), step=10)
    exp.log_scalar("count", 3)
    exp.log_scalar("flag", True)
    exp.execute_hooks("clean_up")
    accumulator = read(exp)
    assert scalars(accumulator, "loss") == [(0, 0.5), (1, 0.25), (2, 0.125), (10, 7.0)]
    assert scalars(accumulator, "count") == [(2, 3.0)]
    assert scalars(accumulator, "flag") == [(2, 1.0)]


@pytest.mark.parametrize(
    "value, message",
    [
        ("0.5", "expects a number"),
        (np.zeros(3), r"single number, got an array of shape \(3,\)"),
        ([1.0], "expects a number"),
        (None, "expects a number"),
    ],
)
def test_bad_scalars_are_refused_clearly(exp, value, message):
    with pytest.raises(TypeError, match=message):
        exp.log_scalar("loss", value)


def test_tensor_with_many_elements_is_refused(exp):
    torch = pytest.importorskip("torch")

    with pytest.raises(TypeError, match=r"tensor of shape \(2, 2\).*log_histogram"):
        exp.log_scalar("loss", torch.ones(2, 2))


def test_log_scalars_writes_one_event_with_all_tags(exp):
    exp.next_step()
    with exp.set_tagscope("val"):
        exp.log_scalars({"loss": 0.5, "accuracy": np.float64(0.75)})
    exp.log_scalars({}, step=3)  # nothing to do
    exp.execute_hooks("clean_up")
    accumulator = read(exp)
    assert scalars(accumulator, "val/loss") == [(1, 0.5)]
    assert scalars(accumulator, "val/accuracy") == [(1, 0.75)]
    assert (
        accumulator.Scalars("val/loss")[0].wall_time
        == accumulator.Scalars("val/accuracy")[0].wall_time
    )
    with pytest.raises(TypeError, match="mapping of tag to number"):
        exp.log_scalars([("loss", 1.0)])


def test_nested_tag_scopes_and_restore_on_exceptions(exp):
    assert exp.tagscope == "" and exp.get_full_tag("x") == "x"
    with exp.set_tagscope("train"):
        with exp.set_tagscope("loss/"):
            assert exp.tagscope == "train/loss"
            assert exp.get_full_tag("total") == "train/loss/total"
            exp.log_scalar("total", 1.0)
        exp.log_scalar("lr", 0.1)
        with pytest.raises(KeyError):
            with exp.set_tagscope("inner"):
                exp.log_scalar("x", 1.0)
                raise KeyError("fail inside the scope")
        assert exp.tagscope == "train"
    assert exp.tagscope == ""
    exp.log_scalar("top", 2.0)
    exp.execute_hooks("clean_up")
    assert set(read(exp).Tags()["scalars"]) == {
        "train/loss/total",
        "train/lr",
        "train/inner/x",
        "top",
    }
    with pytest.raises(TypeError, match="set_tagscope expects a string"):
        with exp.set_tagscope(3):
            pass


def test_tags_are_cleaned_like_tensorboardx_cleans_them(exp, tmp_path):
    from tensorboardX import SummaryWriter

    odd = ["a b", "/lead", "x:y", "ok-1.2/z"]
    for tag in odd:
        exp.log_scalar(tag, 1.0)
    exp.execute_hooks("clean_up")
    with SummaryWriter(str(tmp_path / "raw")) as writer:
        for tag in odd:
            writer.add_scalar(tag, 1.0, 0)
    assert sorted(read(exp).Tags()["scalars"]) == sorted(read(tmp_path / "raw").Tags()["scalars"])


# -- gates -------------------------------------------------------------------------------------
def test_gates_follow_the_config(exp):
    kinds = ["scalars", "images", "embeddings", "histograms"]
    for kind in kinds:
        assert getattr(exp, f"log_{kind}_now") is False  # unset: never (as the original)
    exp.set("tensorboard/log_scalars_every", 3)
    exp.set("tensorboard/log_images_every", 2.0)
    exp.set("tensorboard/log_embeddings_every", 0)
    exp.set("tensorboard/log_histograms_every", None)
    seen = {kind: [] for kind in kinds}
    for _ in range(7):
        for kind in kinds:
            if getattr(exp, f"log_{kind}_now"):
                seen[kind].append(exp.step)
        exp.next_step()
    assert seen == {
        "scalars": [0, 3, 6],
        "images": [0, 2, 4, 6],
        "embeddings": [],
        "histograms": [],
    }
    exp.set("tensorboard/log_scalars_every", 7)  # changes are seen at once
    assert exp.log_scalars_now is True


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True, [10]])
def test_bad_gate_values_name_the_key_and_the_fix(exp, bad):
    exp.set("tensorboard/log_histograms_every", bad)
    expected = (
        "int or float or null" if isinstance(bad, (str, bool, list)) else "positive whole number"
    )
    with pytest.raises(
        ConfigError,
        match=rf"tensorboard/log_histograms_every.*{expected}.*"
        r"--config\.tensorboard\.log_histograms_every",
    ):
        exp.log_histograms_now


# -- images, figures, text, histograms, embeddings ----------------------------------------------
def _decoded(accumulator, tag):
    (event,) = accumulator.Images(tag)
    return event, np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))


IMAGE_FORMS = [(layout, channels) for layout in ("CHW", "HWC") for channels in (1, 3, 4)]


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("layout, channels", IMAGE_FORMS + [("HW", 1)])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_images_in_every_accepted_form(exp, library, layout, channels, dtype):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, size=(6, 10, channels), dtype=np.uint8)
    data = hwc[:, :, 0] if layout == "HW" else (np.moveaxis(hwc, -1, 0) if layout == "CHW" else hwc)
    if dtype == "float32":
        data = data.astype(np.float32) / 255.0
    if library == "torch":
        torch = pytest.importorskip("torch")

        data = torch.from_numpy(np.ascontiguousarray(data))
    exp.log_image("img", data)
    exp.execute_hooks("clean_up")
    event, pixels = _decoded(read(exp), "img")
    assert (event.height, event.width, event.step) == (6, 10, 0)
    expected = np.repeat(hwc, 3, axis=2) if channels == 1 else hwc  # grayscale is stored as RGB
    np.testing.assert_array_equal(pixels, expected)


def test_float_images_are_clipped_and_nan_is_black(exp):
    image = np.array([[-1.0, 0.5, 2.0, np.nan]], dtype=np.float64)
    exp.log_image("img", image, step=4)
    exp.execute_hooks("clean_up")
    _, pixels = _decoded(read(exp), "img")
    assert pixels[0, :, 0].tolist() == [0, 128, 255, 0]


def test_dataformats_overrides_detection(exp):
    hwc = np.zeros((3, 5, 3), dtype=np.uint8)  # would be read as CHW
    hwc[:, :, 0] = 255
    exp.log_image("img", hwc, dataformats="HWC")
    exp.execute_hooks("clean_up")
    event, pixels = _decoded(read(exp), "img")
    assert (event.height, event.width) == (3, 5)
    assert pixels[..., 0].min() == 255 and pixels[..., 1].max() == 0


@pytest.mark.parametrize(
    "value, error, message",
    [
        (
            np.full((4, 4), 300, dtype=np.int64),
            TypeError,
            r"integer pixels in 0\.\.255.*\[300, 300\]",
        ),
        (np.zeros((4, 4), dtype=np.complex64), TypeError, r"got dtype complex64"),
        (
            np.zeros((2, 3, 8, 8), dtype=np.uint8),
            ValueError,
            r"got 4 dimensions, shape \(2, 3, 8, 8\).*value\[0\]",
        ),
        (np.zeros((5, 8, 8), dtype=np.uint8), ValueError, r"got shape \(5, 8, 8\)"),
        ([[0, 1], [1, 0]], TypeError, r"got builtins\.list"),
    ],
)
def test_unaccepted_images_say_what_is_accepted(exp, value, error, message):
    # One error type for every image writer (speedrun.ext.ImageError), a ValueError and a
    # TypeError at once, so code written against either old error keeps working.
    with pytest.raises(ImageError, match=message) as info:
        exp.log_image("img", value)
    assert isinstance(info.value, error)
    assert "log_image('img')" in str(info.value) and "Fix:" in str(info.value)


def test_integer_and_boolean_images_are_pixels(exp):
    exp.log_image("mask", np.array([[True, False]]), step=1)
    exp.log_image("ints", np.array([[0, 7, 255]], dtype=np.int64), step=1)
    exp.execute_hooks("clean_up")
    _, mask = _decoded(read(exp), "mask")
    _, ints = _decoded(read(exp), "ints")
    assert mask[0, :, 0].tolist() == [255, 0] and ints[0, :, 0].tolist() == [0, 7, 255]


def test_log_figure(exp):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(2, 1), dpi=50)
    axis.plot([0, 1], [1, 0])
    exp.log_figure("plot", figure)
    assert not plt.fignum_exists(figure.number)  # closed by default
    exp.execute_hooks("clean_up")
    event, pixels = _decoded(read(exp), "plot")
    assert (event.width, event.height) == (100, 50)
    assert pixels.std() > 0
    with pytest.raises(TypeError, match="matplotlib Figure"):
        exp.log_figure("plot", np.zeros((3, 3)))


def test_log_figure_without_matplotlib_names_the_install(exp, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        exp.log_figure("plot", object())


@pytest.mark.parametrize(
    "use",
    [
        lambda experiment: experiment.log_scalar("loss", 1.0),
        lambda experiment: experiment.logger,
        lambda experiment: experiment.log_hparams({"loss": 1.0}),
        lambda experiment: experiment.dump_logs_to_json(),
    ],
    ids=["log_scalar", "logger", "log_hparams", "dump_logs_to_json"],
)
def test_missing_tensorboardx_names_the_install(exp, monkeypatch, use):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` fails
    with pytest.raises(ImportError) as caught:
        use(exp)
    assert str(caught.value) == (
        "TensorboardMixin needs tensorboardX, which is not installed. "
        "Fix: pip install speedrun-tensorboard (or pip install tensorboardX)"
    )


def test_log_text(exp):
    with exp.set_tagscope("notes"):
        exp.log_text("summary", "**bold** move")
    exp.execute_hooks("clean_up")
    (event,) = read(exp).Tensors("notes/summary/text_summary")
    assert event.tensor_proto.string_val == [b"**bold** move"]
    with pytest.raises(TypeError, match="expects a string"):
        exp.log_text("x", 3)


def test_log_histogram(exp):
    torch = pytest.importorskip("torch")

    values = np.arange(100, dtype=np.float64)
    exp.log_histogram("weights", values)
    exp.next_step().log_histogram("grad", torch.ones(10, requires_grad=True) * 2, bins="auto")
    exp.execute_hooks("clean_up")
    accumulator = read(exp)
    (histogram,) = accumulator.Histograms("weights")
    assert histogram.step == 0
    assert (
        histogram.histogram_value.num,
        histogram.histogram_value.min,
        histogram.histogram_value.max,
        histogram.histogram_value.sum,
    ) == (100, 0, 99, 4950)
    (grad,) = accumulator.Histograms("grad")
    assert (grad.step, grad.histogram_value.num, grad.histogram_value.sum) == (1, 10, 20)
    with pytest.raises(ValueError, match="empty"):
        exp.log_histogram("nothing", np.array([]))


def test_log_embedding(exp):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    thumbnails = np.zeros((4, 3, 8, 8), dtype=np.float32)
    exp.next_step().next_step()
    exp.log_embedding("features", matrix, images=thumbnails, metadata=["a", "b", "c", "d"])
    exp.execute_hooks("clean_up")
    config = open(os.path.join(exp.log_directory, "projector_config.pbtxt")).read()
    assert "features" in config and "00002" in config
    folder = os.path.join(exp.log_directory, "00002", "features")
    rows = open(os.path.join(folder, "tensors.tsv")).read().split("\n")
    assert [list(map(float, row.split("\t"))) for row in rows if row] == matrix.tolist()
    assert open(os.path.join(folder, "metadata.tsv")).read().split() == ["a", "b", "c", "d"]
    assert os.path.isfile(os.path.join(folder, "sprite.png"))
    with pytest.raises(ValueError, match="one label per point"):
        exp.log_embedding("features", matrix, metadata=["a"])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        exp.log_embedding("features", np.zeros(3))
    with pytest.raises(ValueError, match="square thumbnail"):
        exp.log_embedding("features", matrix, images=np.zeros((4, 3, 8, 6)))


def test_histogram_and_embedding_take_the_readme_names_and_the_original_ones(exp):
    exp.log_histogram("readme", values=np.arange(4.0), step=1)
    exp.log_histogram("original", value=np.arange(4.0), bins="auto", step=1)
    exp.log_embedding("readme", matrix=np.zeros((2, 3)), step=1)
    exp.log_embedding("original", tensor=np.zeros((2, 3)), step=1)
    exp.execute_hooks("clean_up")
    accumulator = read(exp)
    assert accumulator.Histograms("readme")[0].histogram_value.sum == 6
    assert accumulator.Histograms("original")[0].histogram_value.sum == 6
    config = open(os.path.join(exp.log_directory, "projector_config.pbtxt")).read()
    assert "readme" in config and "original" in config
    with pytest.raises(TypeError, match=r"both 'values' and 'value'"):
        exp.log_histogram("x", values=np.ones(2), value=np.ones(2))
    with pytest.raises(TypeError, match=r"missing its data argument 'matrix' \(or 'tensor'"):
        exp.log_embedding("x")


# -- hparams -----------------------------------------------------------------------------------
def _hparams_data(accumulator):
    try:
        content = accumulator.PluginTagToContent("hparams")
    except KeyError:  # no hparams logged
        return {}
    return {
        tag: plugin_data_pb2.HParamsPluginData.FromString(data) for tag, data in content.items()
    }


def test_log_hparams_writes_the_flat_config_and_final_metrics(exp):
    exp.set("training/lr", 0.01)
    exp.set("training/use_amp", True)
    exp.set("model/name", "resnet")
    exp.set("model/widths", [64, 128])
    exp.set("model/dropout", None)
    exp.log_scalar("val/accuracy", 0.5)
    exp.next_step().log_scalar("val/accuracy", 0.8)
    exp.log_hparams({"final/loss": 0.25, "val/accuracy": None})
    exp.execute_hooks("clean_up")
    accumulator = read(exp)
    data = _hparams_data(accumulator)
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    assert start["training/lr"].number_value == 0.01
    assert start["training/use_amp"].bool_value is True
    assert start["model/name"].string_value == "resnet"
    assert start["model/widths"].string_value == "[64, 128]"
    assert "model/dropout" not in start
    experiment = data["_hparams_/experiment"].experiment
    assert sorted(m.name.tag for m in experiment.metric_infos) == ["final/loss", "val/accuracy"]
    assert scalars(accumulator, "final/loss") == [(1, 0.25)]
    assert scalars(accumulator, "val/accuracy") == [(0, 0.5), (1, 0.800000011920929)]


def test_log_hparams_with_explicit_hparams_and_a_list_of_metrics(exp):
    exp.log_hparams(["score"], hparams={"optimizer": {"name": "adam", "beta": 0.9}})
    exp.execute_hooks("clean_up")
    data = _hparams_data(read(exp))
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    assert dict(start)["optimizer/name"].string_value == "adam"
    assert start["optimizer/beta"].number_value == 0.9
    with pytest.raises(TypeError, match=r"\['loss'\]"):
        exp.log_hparams("loss")


# -- export ------------------------------------------------------------------------------------
def test_dump_logs_to_json_matches_what_tensorboard_reads(exp, tmp_path):
    for _ in range(3):
        exp.log_scalars({"a": exp.step * 0.5, "b": -exp.step})
        exp.next_step()
    exp.dump_logs_to_json()
    assert len(event_files(exp)) == 1  # flushed, not closed: the same file goes on
    dumped = json.load(open(os.path.join(exp.log_directory, "tensorboard.json")))
    accumulator = read(exp)
    assert set(dumped) == {"a", "b"}
    for tag, points in dumped.items():
        assert points == [[e.wall_time, e.step, e.value] for e in accumulator.Scalars(tag)]
    exp.dump_logs_to_json(tmp_path / "elsewhere.json")
    assert json.load(open(tmp_path / "elsewhere.json")) == dumped


# -- resuming ----------------------------------------------------------------------------------
def test_loading_a_checkpoint_purges_later_steps_without_duplicates(exp):
    for _ in range(8):  # the run gets to step 7, with a checkpoint at step 5
        exp.log_scalar("loss", float(exp.step))
        exp.log_scalar("other", 1.0)
        if exp.step == 5:
            exp.checkpoint()
        exp.next_step()
    exp.load_from_checkpoint()  # back to step 5: purge from step 5 on, in the same file
    assert exp.step == 5
    for _ in range(5):
        exp.log_scalar("loss", 100.0 + exp.step)
        exp.next_step()
    exp.execute_hooks("clean_up")
    accumulator = read(exp)
    assert scalars(accumulator, "loss") == [(s, float(s)) for s in range(5)] + [
        (s, 100.0 + s) for s in range(5, 10)
    ]
    assert [s for s, _ in scalars(accumulator, "other")] == [0, 1, 2, 3, 4]  # not logged again
    assert len(event_files(exp)) == 1  # one event file per run and process
    exp.dump_logs_to_json()
    dumped = json.load(open(os.path.join(exp.log_directory, "tensorboard.json")))
    assert [[step, value] for _, step, value in dumped["loss"]] == [
        [s, v] for s, v in scalars(accumulator, "loss")
    ]
    assert [step for _, step, _ in dumped["other"]] == [0, 1, 2, 3, 4]


# -- the event file ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tag", "value", "step"),
    [
        ("loss", 0.1, 0),
        ("train/loss", 1e39, 5),
        ("x" * 200, -3.5, 10**12),
        ("ü/α", -1e-40, -7),
        ("a", float("nan"), 127),
        ("a", float("-inf"), 128),
        ("a", 2.0**-149, 2**63 - 1),
    ],
)
def test_scalar_events_are_encoded_exactly_as_protobuf_encodes_them(tag, value, step):
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary

    from speedrun.mixins.tensorboard._writer import encode_scalar_event

    expected = Event(
        wall_time=1234.5,
        step=step,
        summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]),
    ).SerializeToString()
    assert encode_scalar_event(tag, value, step, 1234.5) == expected


def test_scalars_are_bit_exact_and_interleave_with_logger_writes_in_order(exp):
    import struct

    from speedrun.mixins.tensorboard._events import iter_events

    values = [1 / 3, 1e39, -2.5e-42, 123456.789, float("inf")]
    for value in values:
        exp.log_scalar("x", value)
        exp.logger.add_text("note", f"after {exp.step}", exp.step)  # tensorboardX's own method
        exp.next_step()
    exp.log_scalar("x", 7, step=np.int64(100))
    exp.execute_hooks("clean_up")
    (path,) = event_files(exp)
    kinds = [
        (event.step, event.summary.value[0].tag)
        for event in iter_events(os.path.join(exp.log_directory, path))
        if event.HasField("summary")
    ]
    assert kinds == [(step, tag) for step in range(5) for tag in ("x", "note/text_summary")] + [
        (100, "x")
    ]

    def float32(value):
        return struct.unpack("<f", struct.pack("<f", value))[0]

    # beyond float32's range: infinity, as protobuf stores it; below: the float32 subnormal
    expected = [float32(1 / 3), float("inf"), float32(-2.5e-42), float32(123456.789), float("inf")]
    assert scalars(read(exp), "x") == list(zip(range(5), expected)) + [(100, 7.0)]


def test_a_checkpoint_flushes_every_file_of_the_writer(exp):
    from speedrun.mixins.tensorboard._events import read_scalars

    exp.log_scalar("loss", 0.5)
    exp.logger.add_scalars("pair", {"a": 1.0, "b": 2.0}, 0)  # subfolder runs, own files
    assert read_scalars(exp.log_directory) == {}  # still in the buffers
    exp.checkpoint()
    on_disk = read_scalars(exp.log_directory)
    assert {tag: [point[1:] for point in points] for tag, points in on_disk.items()} == {
        "loss": [[0, 0.5]],
        "pair/a/pair": [[0, 1.0]],
        "pair/b/pair": [[0, 2.0]],
    }


def test_events_reach_the_file_after_flush_secs_without_further_calls(tmp_path):
    import time

    from speedrun.mixins.tensorboard._events import read_scalars

    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.set("tensorboard/flush_secs", 0.2)
    experiment.log_scalar("loss", 1.0)
    deadline = time.monotonic() + 10
    while not read_scalars(experiment.log_directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [point[1:] for point in read_scalars(experiment.log_directory)["loss"]] == [[0, 1.0]]
    experiment.execute_hooks("clean_up")


# -- hparams of every run ----------------------------------------------------------------------
def _run_experiment(tmp_path, **config):
    experiment = Experiment(str(tmp_path / "RUN-0"))
    for key, value in config.items():
        experiment.set(key.replace("__", "/"), value)
    experiment.set_default_dispatch("train")
    experiment.run(steps=2)
    return experiment


def test_run_logs_the_flat_config_as_hparams_at_set_up(tmp_path):
    experiment = _run_experiment(tmp_path, training__lr=0.1, model__widths=[4, 8], seed=3)
    data = _hparams_data(read(experiment))
    assert set(data) == {"_hparams_/session_start_info"}  # columns: every scalar (no experiment)
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    assert start["training/lr"].number_value == 0.1
    assert start["model/widths"].string_value == "[4, 8]"
    assert start["seed"].number_value == 3


def test_selected_hparams_and_metrics(tmp_path):
    experiment = _run_experiment(
        tmp_path,
        training__lr=0.1,
        training__steps=5,
        seed=3,
        tensorboard__hparams=["training", "seed"],
        tensorboard__hparams_metrics=["loss", "val/acc"],
    )
    data = _hparams_data(read(experiment))
    start = data["_hparams_/session_start_info"].session_start_info.hparams
    assert sorted(start) == ["seed", "training/lr", "training/steps"]
    metrics = data["_hparams_/experiment"].experiment.metric_infos
    assert [metric.name.tag for metric in metrics] == ["loss", "val/acc"]


def test_hparams_can_be_turned_off_and_bad_values_are_config_errors(tmp_path):
    experiment = _run_experiment(tmp_path, tensorboard__hparams=False)
    assert _hparams_data(read(experiment)) == {}
    with pytest.raises(ConfigError, match="tensorboard/hparams_metrics.*str or list or tuple"):
        _run_experiment(tmp_path, tensorboard__hparams_metrics={"loss": 1})
    with pytest.raises(ConfigError, match="tensorboard/hparams.*bool or str or list"):
        _run_experiment(tmp_path, tensorboard__hparams=3)
    with pytest.warns(UserWarning, match="names 'trainig', not found.*training/lr"):
        _run_experiment(tmp_path, training__lr=0.1, tensorboard__hparams=["trainig"])


def test_the_old_max_queue_key_is_reported_not_silently_ignored(exp):
    exp.set("tensorboard/max_queue", 100)
    with pytest.warns(UserWarning, match="tensorboard/max_queue.*no longer applies.*buffer_bytes"):
        exp.log_scalar("loss", 1.0)
