import os
import subprocess
import sys

import pytest
import yaml

from speedrun import (
    ArgumentError,
    BaseExperiment,
    ConfigError,
    DispatchError,
    ExperimentDirectoryError,
    LockError,
    Namespace,
    register_default_dispatch,
    register_hook,
    register_pre_dispatch_hook,
)

CONFIG = "training:\n  lr: 0.1\n  epochs: 3\nmodel:\n  name: mlp\n"


def read_config(run):
    with open(os.path.join(run, "Configurations", "train_config.yml")) as handle:
        return yaml.safe_load(handle)


def test_directory_layout_and_properties(tmp_path):
    run = tmp_path / "RUN-0"
    experiment = BaseExperiment(run)
    for name in ("Configurations", "Logs", "Weights", "Plots"):
        assert (run / name).is_dir()
    assert (run / ".speedrun").is_file()
    assert experiment.experiment_directory == str(run)
    assert experiment.log_directory == str(run / "Logs")
    assert experiment.checkpoint_directory == str(run / "Weights")
    assert experiment.plot_directory == str(run / "Plots")
    assert experiment.configuration_directory == str(run / "Configurations")
    assert experiment.checkpoint_path == str(run / "Weights" / "checkpoint_iter_0.pt")
    experiment.next_step().next_step()
    assert experiment.checkpoint_path.endswith("checkpoint_iter_2.pt")


def test_without_directory_everything_is_none():
    experiment = BaseExperiment()
    assert experiment.experiment_directory is None
    assert experiment.log_directory is None and experiment.checkpoint_path is None
    with pytest.raises(ExperimentDirectoryError, match="needs an experiment directory"):
        experiment.dump_configuration()


def test_counters():
    experiment = BaseExperiment()
    assert (experiment.step, experiment.epoch) == (0, 0)
    assert experiment.next_step() is experiment
    experiment.next_epoch().next_epoch()
    assert (experiment.step, experiment.epoch) == (1, 2)


def test_get_set_and_config_compatibility(tmp_path):
    experiment = BaseExperiment()
    experiment.set("a/b", 42)
    assert experiment.get("a/b") == 42
    assert experiment.get("a/c", 13) == 13
    with pytest.raises(ConfigError, match="'c'"):
        experiment.get("a/c", ensure_exists=True)
    experiment._config = {"x": {"y": 1}}  # the original's attribute still works
    assert experiment.get("x/y") == 1 and experiment.get("a/b") is None
    experiment.get("x")["y"] = 2
    assert experiment.get("x/y") == 2


def test_auto_setup_reads_overrides_and_dumps_exactly(argv, write, tmp_path):
    write("RUN-0/Configurations/train_config.yml", CONFIG)
    argv("RUN-0", "--config.training.lr", "0.01", "--config.model.layers=[64, 64]")
    experiment = BaseExperiment().auto_setup()
    assert experiment.get("training/lr") == 0.01
    assert experiment.get("model/layers") == [64, 64]
    dumped = read_config(tmp_path / "RUN-0")
    assert dumped["training"] == {"lr": 0.01, "epochs": 3}
    assert dumped["model"] == {"name": "mlp", "layers": [64, 64]}
    assert "git_rev" in dumped and "git_dirty" in dumped
    # the dump is exactly the config the run uses
    assert BaseExperiment(tmp_path / "RUN-0").read_config_file()._config == experiment._config
    # the hand-written original is kept, not lost
    previous = list((tmp_path / "RUN-0" / "Configurations" / "previous").iterdir())
    assert [p.read_text() for p in previous] == [CONFIG]


def test_git_revision_and_dirty_state(argv, tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    argv("RUN-0", "--config.a", "1")
    experiment = BaseExperiment().auto_setup()
    assert experiment.get("git_rev") == revision
    assert experiment.get("git_dirty") is False
    (tmp_path / "tracked.txt").write_text("v1")
    git("add", "tracked.txt")
    argv("RUN-1", "--config.a", "1")
    experiment = BaseExperiment().auto_setup()
    assert experiment.get("git_dirty") is True
    assert read_config(tmp_path / "RUN-1")["git_dirty"] is True


def test_outside_git_the_revision_is_null(argv, tmp_path):
    argv("RUN-0")
    experiment = BaseExperiment().auto_setup()
    assert experiment.get("git_rev") is None and experiment.get("git_dirty") is None


def test_inherit_from_directory_and_from_yml(argv, write, tmp_path):
    write("RUN-0/Configurations/train_config.yml", CONFIG)
    argv("RUN-1", "--inherit", "RUN-0", "--config.training.lr", "0.5")
    BaseExperiment().auto_setup()
    assert read_config(tmp_path / "RUN-1")["training"] == {"lr": 0.5, "epochs": 3}
    assert read_config(tmp_path / "RUN-0")["training"]["lr"] == 0.1  # parent untouched
    write("base.yml", "a: 1\n")
    argv("RUN-2", "--inherit", "base.yml")
    assert BaseExperiment().auto_setup().get("a") == 1


@pytest.mark.parametrize(
    "target, message",
    [
        ("NOPE", "no such experiment directory"),
        ("nope.yml", "no such file"),
        ("EMPTY", "expected .*train_config.yml, which does not exist"),
    ],
)
def test_inherit_missing_target(argv, tmp_path, target, message):
    (tmp_path / "EMPTY" / "Configurations").mkdir(parents=True)
    argv("RUN-1", "--inherit", target)
    with pytest.raises(ConfigError, match=message):
        BaseExperiment().auto_setup()


def test_inherit_without_read_copies_the_file(write, tmp_path):
    write("RUN-0/Configurations/train_config.yml", CONFIG)
    experiment = BaseExperiment(tmp_path / "RUN-1")
    experiment.inherit_configuration(str(tmp_path / "RUN-0"), read=False)
    assert (tmp_path / "RUN-1/Configurations/train_config.yml").read_text() == CONFIG
    with pytest.raises(ConfigError, match="before the configuration was read"):
        experiment.get("training/lr")  # nothing was read yet: an error, not None
    assert experiment.get("training/lr", None) is None
    assert experiment.read_config_file().get("training/lr") == 0.1


def test_macros_in_order(argv, write, tmp_path):
    write("RUN-0/Configurations/train_config.yml", CONFIG)
    write("m1.yml", "training:\n  lr: 0.2\n")
    write("m2.yml", "training:\n  epochs: 9\nmodel:\n  __speedrun__: purge\n  name: cnn\n")
    argv("RUN-0", "--macro", "m1.yml:m2.yml", "--config.training.lr", "0.3")
    experiment = BaseExperiment().auto_setup()
    assert experiment.get("training") == {"lr": 0.3, "epochs": 9}
    assert experiment.get("model") == {"name": "cnn"}


def test_override_report_and_strict_mode(argv, write, capsys):
    write("RUN-0/Configurations/train_config.yml", CONFIG)
    argv("RUN-0", "--config.training.lrr", "0.2", "--config.model.name", "7")
    BaseExperiment().auto_setup()
    err = capsys.readouterr().err
    assert "2 --config override(s) do not match" in err
    assert "training/lrr: new key" in err and "model/name: type changes from str" in err
    argv("RUN-0", "--config.training.momentum", "0.9", "--strict")
    with pytest.raises(ConfigError, match="--strict: 1 --config override"):
        BaseExperiment().auto_setup()


def test_flags_alone_build_a_config_silently(argv, capsys, tmp_path):
    argv("RUN-0", "--config.training.lr", "0.1", "--config.model.name", "mlp")
    experiment = BaseExperiment().auto_setup()
    assert experiment.get("model/name") == "mlp"
    assert capsys.readouterr().err == ""


def test_malformed_yaml_and_python_tags_are_refused(argv, write, tmp_path):
    write("RUN-0/Configurations/train_config.yml", "training:\n  lr: [0.1\n")
    argv("RUN-0")
    with pytest.raises(ConfigError, match="train_config.yml"):
        BaseExperiment().auto_setup()
    marker = tmp_path / "pwned"
    write(
        "RUN-1/Configurations/train_config.yml",
        f"a: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    argv("RUN-1")
    with pytest.raises(ConfigError, match=r"train_config.yml.*1"):
        BaseExperiment().auto_setup()
    assert not marker.exists()


def test_missing_directory_argument(argv):
    argv("--config.a", "1")
    with pytest.raises(ArgumentError, match="expected the experiment directory"):
        BaseExperiment().auto_setup()


def test_get_arg(argv):
    argv("RUN-0", "--blah", "42", "--name", "x")
    experiment = BaseExperiment().record_args()
    assert experiment.get_arg("blah") == 42 and experiment.get_arg("name") == "x"
    assert experiment.get_arg(1) == "RUN-0"
    assert experiment.get_arg("nope", 5) == 5 and experiment.get_arg(9) is None
    with pytest.raises(ArgumentError, match="expected --nope VALUE"):
        experiment.get_arg("nope", ensure_exists=True)
    with pytest.raises(ArgumentError, match="at least 10"):
        experiment.get_arg(9, ensure_exists=True)
    with pytest.raises(ArgumentError, match="record_args"):
        BaseExperiment().get_arg("blah")


def test_purge_removes_a_speedrun_directory(argv, write, tmp_path):
    write("RUN-0/Configurations/train_config.yml", CONFIG)
    BaseExperiment(tmp_path / "RUN-0")
    (tmp_path / "RUN-0" / "Logs" / "old.log").write_text("old")
    argv("RUN-0", "--purge", "--config.a", "1")
    experiment = BaseExperiment().auto_setup()
    assert not (tmp_path / "RUN-0" / "Logs" / "old.log").exists()
    # The directory's own config is read before the purge: the new run starts from it.
    assert experiment.get("a") == 1 and experiment.get("training") == {"lr": 0.1, "epochs": 3}
    text = (tmp_path / "RUN-0" / "Configurations" / "train_config.yml").read_text()
    assert "lr: 0.1" in text and "a: 1" in text


def test_purge_refuses_foreign_folders(argv, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.py").write_text("important")
    argv(str(source), "--purge")
    with pytest.raises(ExperimentDirectoryError):
        BaseExperiment().auto_setup()
    assert (source / "model.py").read_text() == "important"


def test_second_writer_fails_at_once(argv):
    argv("RUN-0")
    first = BaseExperiment().auto_setup()
    with pytest.raises(LockError, match=str(os.getpid())):
        BaseExperiment().auto_setup()
    first.run = lambda: None
    first._writer_lock.release()
    BaseExperiment().auto_setup()


def test_existing_checkpoints_need_resume_or_purge(argv, tmp_path):
    argv("RUN-0")
    experiment = BaseExperiment().auto_setup()
    experiment.checkpoint()
    experiment._writer_lock.release()
    with pytest.raises(ExperimentDirectoryError, match="--resume .* --purge"):
        BaseExperiment().auto_setup()
    argv("RUN-0", "--resume", "--purge")
    with pytest.raises(ArgumentError, match="pass one"):
        BaseExperiment().auto_setup()


class Trainer(BaseExperiment):
    def __init__(self):
        super().__init__()
        self.events = []

    @register_pre_dispatch_hook
    def prepare(self):
        self.events.append("prepare")

    @register_default_dispatch
    def train(self, value=1):
        self.events.append(("train", value))
        return value * 2

    def evaluate(self):
        self.events.append("evaluate")
        raise RuntimeError("evaluation failed")

    def clean_up(self):  # overriding clean_up does not skip the clean_up hooks
        self.events.append("clean_up")

    def close_files(self):
        self.events.append("hook")

    register_hook(close_files, "clean_up")


def test_run_dispatches_default_with_hooks_and_clean_up(argv):
    argv("RUN-0")
    trainer = Trainer()
    trainer.auto_setup()
    assert trainer.run(value=3) == 6
    assert trainer.events == ["prepare", ("train", 3), "clean_up", "hook"]
    assert BaseExperiment().auto_setup()  # the lock was released by run()


def test_dispatch_flag_and_clean_up_on_error(argv):
    argv("RUN-0", "--dispatch", "evaluate")
    trainer = Trainer()
    trainer.auto_setup()
    with pytest.raises(RuntimeError, match="evaluation failed"):
        trainer.run()
    assert trainer.events == ["prepare", "evaluate", "clean_up", "hook"]


def test_unknown_dispatch_lists_methods(argv):
    argv("RUN-0", "--dispatch", "trian")
    trainer = Trainer()
    trainer.auto_setup()
    with pytest.raises(DispatchError, match="'trian'.*evaluate.*train"):
        trainer.run()
    assert trainer.events[-2:] == ["clean_up", "hook"]


def test_default_dispatch_sources():
    class Plain(BaseExperiment):
        DEFAULT_DISPATCH = "go"

        def go(self):
            return "class default"

        def other(self):
            return "instance default"

    plain = Plain()
    assert plain.get_dispatch_key() == "go" and plain.run() == "class default"
    plain.set_default_dispatch("other")
    assert plain.get_default_dispatch() == "other" and plain.run() == "instance default"
    with pytest.raises(DispatchError, match="expects the name of a method"):
        plain.set_default_dispatch("nothing")
    with pytest.raises(DispatchError, match="no method to dispatch"):
        BaseExperiment().run()
    assert Trainer().find_default_dispatch() == "train"


def test_module_level_decorators_are_the_static_methods():
    import speedrun

    assert speedrun.register_default_dispatch is BaseExperiment.register_default_dispatch
    assert speedrun.register_pre_dispatch_hook is BaseExperiment.register_pre_dispatch_hook


def test_cache_and_bundle():
    experiment = BaseExperiment()
    experiment.write_to_cache("loss", 2).accumulate_in_cache("loss", 1)
    assert experiment.read_from_cache("loss") == 3
    experiment.accumulate_in_cache("seen", [1]).accumulate_in_cache(
        "seen", 2, accumulate_fn=lambda old, new: old + [new]
    )
    assert experiment.read_from_cache("seen") == [1, 2]
    assert experiment.cache_keys == ["loss", "seen"]
    experiment.clear_in_cache("loss").clear_in_cache("never-there")
    assert experiment.read_from_cache("loss", "d") == "d"
    with pytest.raises(KeyError, match="'loss' is not in the cache"):
        experiment.read_from_cache("loss", ensure_exists=True)
    experiment.clear_cache()
    assert experiment.cache_keys == []
    bundle = experiment.bundle(a=1)
    assert isinstance(bundle, Namespace) and bundle.set("b/c", 2).get("b/c") == 2


def test_mixins_compose_with_super_init():
    class Mixin:
        def __init__(self):
            super().__init__()
            self.mixin_ready = True

    class Experiment(BaseExperiment, Mixin):
        pass

    assert Experiment().mixin_ready


def test_register_unpickleable_dedupes():
    experiment = BaseExperiment().register_unpickleable("a", "b").register_unpickleable("a")
    assert experiment._meta_config["exclude_attrs_from_save"] == ["a", "b"]


def test_import_is_light():
    code = (
        "import sys, speedrun; heavy = [m for m in ('torch', 'numpy', 'tensorboardX', "
        "'matplotlib', 'dill') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
