"""FirelightMixin: real firelight visualizers on random tensors, read back with PIL."""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("firelight")
torch = pytest.importorskip("torch")

from PIL import Image

from speedrun import BaseExperiment, ConfigError, ExperimentDirectoryError
from speedrun.mixins.firelight import FirelightMixin

# Two rows (the visualizers), each holding the first 3 samples side by side:
# 3 images of 8x8 pixels with pad_width 1 between samples and rows.
GRID = {
    "ImageGridVisualizer": {
        "input_mapping": {"global": [{"B": ":3"}]},
        "pad_width": 1,
        "pad_value": [1.0, 0.0, 0.0],
        "visualizers": [
            {
                "IdentityVisualizer": {
                    "input": ["inputs", {"index": 0}],
                    "cmap": "gray",
                    "value_range": [0, 1],
                }
            },
            {"IdentityVisualizer": {"input": "prediction", "cmap": "gray", "value_range": [0, 1]}},
        ],
    }
}
HEIGHT, WIDTH = 2 * 8 + 1, 3 * 8 + 2


class Experiment(FirelightMixin, BaseExperiment):
    pass


@pytest.fixture
def experiment(tmp_path):
    experiment = Experiment(str(tmp_path / "experiment"))
    experiment.set("firelight", GRID)
    return experiment


def states(seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(4, 1, 8, 8, generator=generator)
    return {"inputs": [inputs], "prediction": torch.zeros(4, 1, 8, 8)}


def test_image_grid_has_the_layout_and_the_values(experiment):
    data = states()
    grid = experiment.get_image_grid(data)
    assert isinstance(grid, np.ndarray) and grid.dtype == np.float32
    assert grid.shape == (HEIGHT, WIDTH, 4)
    assert grid.min() >= 0.0 and grid.max() <= 1.0
    # top-left image: the first input sample, grey (R == G == B) with values in [0, 1]
    first = data["inputs"][0][0, 0].numpy()
    assert np.allclose(grid[:8, :8, 0], grid[:8, :8, 1])
    assert np.corrcoef(grid[:8, :8, 0].ravel(), first.ravel())[0, 1] > 0.99
    # the prediction row is black, the separators carry the pad colour (red)
    assert np.allclose(grid[9:, :8, :3], 0.0)
    assert np.allclose(grid[8, :8, :3], [1.0, 0.0, 0.0])
    assert np.allclose(grid[..., 3], 1.0)


def test_save_image_grid_writes_the_png_under_plots(experiment):
    experiment.next_step().next_step()
    data = states(seed=1)
    (path,) = experiment.save_image_grid(data, "validation")  # save_* return the files
    assert path == os.path.join(experiment.plot_directory, "validation_step_2.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH, HEIGHT)
        pixels = np.asarray(image.convert("RGBA"))
    expected = np.round(experiment.get_image_grid(data) * 255).astype(np.uint8)
    assert np.array_equal(pixels, expected)
    assert [name for name in os.listdir(experiment.plot_directory) if name.startswith(".")] == []


def test_numpy_states_give_the_same_grid(experiment):
    data = states(seed=2)
    as_numpy = {"inputs": [data["inputs"][0].numpy()], "prediction": data["prediction"].numpy()}
    assert np.array_equal(experiment.get_image_grid(data), experiment.get_image_grid(as_numpy))


def test_visualizer_from_a_yaml_file_and_config_untouched(tmp_path, experiment):
    import yaml

    path = tmp_path / "visualizer.yml"
    path.write_text(
        yaml.safe_dump({"IdentityVisualizer": {"input": "prediction", "value_range": [0, 1]}})
    )
    visualizer = experiment.load_visualizer(str(path))
    assert experiment.visualizer is visualizer
    grid = experiment.get_image_grid({"prediction": torch.ones(1, 1, 5, 7)})
    assert grid.shape[:2] == (5, 7)
    # building from the config does not replace the configuration by visualizer objects
    experiment.get_firelight_visualizer()
    assert experiment.get("firelight") == GRID
    assert experiment.visualizer is visualizer


def _inverted_class():
    from firelight.visualizers.visualizers import IdentityVisualizer

    class InvertedVisualizer(IdentityVisualizer):
        def visualize(self, tensor, **_):
            return 1.0 - tensor

    return InvertedVisualizer


InvertedVisualizer = _inverted_class()


def test_custom_visualizers_by_dotted_path_also_nested(experiment):
    dotted = f"{__name__}.InvertedVisualizer"
    experiment.set(
        "firelight",
        {
            "ImageGridVisualizer": {
                "visualizers": [
                    {dotted: {"input": "prediction", "value_range": [0, 1], "cmap": "gray"}}
                ]
            }
        },
    )
    grid = experiment.get_image_grid({"prediction": torch.zeros(1, 1, 4, 4)})
    assert grid.shape == (4, 4, 4)
    assert np.allclose(grid[..., :3], 1.0)  # inverted zeros are white
    assert dotted in str(experiment.get("firelight"))  # the config keeps the user's spelling


@pytest.mark.parametrize(
    "config, message",
    [
        ({"NoSuchVisualizer": {}}, "NoSuchVisualizer"),
        ({"ImageGridVisualizer": {}}, "KeyError"),
        ({"IdentityVisualizer": {}, "ImageGridVisualizer": {}}, "one entry"),
        ("IdentityVisualizer", "one entry"),
    ],
)
def test_wrong_config_names_the_source_and_firelights_error(experiment, config, message):
    experiment.set("firelight", config)
    with pytest.raises(ConfigError, match=message) as caught:
        experiment.visualizer
    assert "config key 'firelight'" in str(caught.value)


def test_wrong_file_names_the_file(tmp_path, experiment):
    path = tmp_path / "bad.yml"
    path.write_text("RowVisualizer: {visualizers: [{NotAVisualizer: {}}]}\n")
    with pytest.raises(ConfigError, match="bad.yml") as caught:
        experiment.load_visualizer(str(path))
    assert "NotAVisualizer" in str(caught.value)
    with pytest.raises(ConfigError, match="does not exist"):
        experiment.load_visualizer(str(tmp_path / "missing.yml"))


def test_missing_config_and_directory_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="'firelight' key"):
        Experiment(str(tmp_path / "a")).visualizer
    bare = Experiment()
    bare.set("firelight", GRID)
    with pytest.raises(ExperimentDirectoryError, match="Plots"):
        bare.save_image_grid(states())


def test_log_image_grid_needs_tensorboard_mixin(experiment):
    with pytest.raises(AttributeError, match="speedrun-tensorboard"):
        experiment.log_image_grid(states())


def test_log_image_grid_writes_a_tensorboard_image(tmp_path):
    tensorboard = pytest.importorskip("speedrun.mixins.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class Both(FirelightMixin, tensorboard.TensorboardMixin, BaseExperiment):
        pass

    experiment = Both(str(tmp_path / "experiment"))
    experiment.set("firelight", GRID)
    experiment.next_step()
    assert experiment.log_image_grid(states(), "grid") is experiment  # log_* return self
    with experiment.set_tagscope("val"):
        experiment.log_image_grid(states(), "grid")
        (scoped,) = experiment.save_image_grid(states(), "grid")
    experiment.execute_hooks("clean_up")
    assert scoped == os.path.join(experiment.plot_directory, "val", "grid_step_1.png")
    accumulator = EventAccumulator(experiment.log_directory)
    accumulator.Reload()
    assert len(accumulator.Images("val/grid")) == 1
    (event,) = accumulator.Images("grid")
    assert (event.step, event.width, event.height) == (1, WIDTH, HEIGHT)
    import io

    with Image.open(io.BytesIO(event.encoded_image_string)) as logged:
        assert np.asarray(logged.convert("RGB"))[8, 0].tolist() == [255, 0, 0]


def test_importing_is_lazy_and_firelight_keeps_the_logging_configuration():
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    from speedrun.mixins.firelight import import_firelight

    import_firelight()
    assert (list(root.handlers), root.level) == before
    # In a fresh interpreter (firelight calls logging.basicConfig on its first import only):
    script = textwrap.dedent("""
        import logging, sys
        import speedrun.mixins.firelight as m
        print(sorted(k for k in ("torch", "firelight", "numpy", "matplotlib")
                     if k in sys.modules))
        m.import_firelight()
        print(len(logging.getLogger().handlers), logging.getLogger().level, "torch" in sys.modules)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", f"0 {logging.WARNING} True"]


def test_legacy_import_resolves_the_mixin():
    import speedrun

    assert speedrun.FirelightMixin is FirelightMixin
