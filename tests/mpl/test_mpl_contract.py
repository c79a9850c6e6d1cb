"""MatplotlibMixin's declared contract: the tag scope (shared with every mixin through
``TagScopeMixin.NOT_CHECKPOINTED``) stays out of checkpoints and is not overwritten by a load."""

from __future__ import annotations

from speedrun import BaseExperiment
from speedrun.mixins.mpl import MatplotlibMixin

SCOPE = "_speedrun_tagscope"  # TagScopeMixin's attribute


class Experiment(MatplotlibMixin, BaseExperiment):
    pass


def test_the_tag_scope_is_not_checkpointed(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    with experiment.set_tagscope("train"):
        assert SCOPE in vars(experiment)
        assert SCOPE not in experiment._checkpoint_state()
        experiment.checkpoint()
    with experiment.set_tagscope("val"):
        experiment.load_from_checkpoint()
        assert experiment.get_full_tag("plot") == "val/plot"  # the load kept this scope
    assert experiment.tagscope == ""
