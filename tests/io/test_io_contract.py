"""IOMixin's declared contract: open files, progress bars and a custom printer stay out of
checkpoints and are not overwritten by a load."""

from __future__ import annotations

from speedrun import BaseExperiment
from speedrun.mixins.io import IOMixin


class Experiment(IOMixin, BaseExperiment):
    pass


def test_open_files_bars_and_printer_are_not_checkpointed(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.print_to_file(True)
    printed: list[str] = []
    experiment.set_printer(printed.append)
    experiment.print("hello")
    for _ in experiment.progress(range(2), tag="loop"):
        pass
    assert IOMixin.NOT_CHECKPOINTED <= set(vars(experiment))
    state = experiment._checkpoint_state()
    assert not IOMixin.NOT_CHECKPOINTED & set(state)
    assert "_io_print_marks" in state  # the printed file's size is kept, for --resume
    experiment.checkpoint()
    experiment.load_from_checkpoint()
    assert experiment.printer == printed.append  # kept: a load does not overwrite it
    experiment.print("again")
    assert printed == ["hello", "again"]
    assert (tmp_path / "RUN-0" / "Logs" / "stdout").read_text() == "hello\nagain\n"
