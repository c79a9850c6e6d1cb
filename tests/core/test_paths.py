import os

import pytest

from speedrun.directory._paths import relative_parts, tagged_file


def test_tagged_file_creates_the_tag_folders(tmp_path):
    path = tagged_file(str(tmp_path), "val/pred", suffix="_step_3.png", what="image tag")
    assert path == os.path.join(str(tmp_path), "val", "pred_step_3.png")
    assert (tmp_path / "val").is_dir() and not os.path.exists(path)
    assert relative_parts("a//b/", what="tag") == ["a", "b"]


@pytest.mark.parametrize(
    "name, message",
    [
        (3, "to be a string like 'train/loss', got int 3"),
        ("", "relative, non-empty name"),
        ("/etc/passwd", "relative, non-empty name"),
        ("../outside", "stay inside the experiment folder"),
        ("a/./b", "stay inside the experiment folder"),
    ],
)
def test_names_that_leave_the_folder_are_refused(tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        tagged_file(str(tmp_path), name, suffix=".png", what="image tag")
    assert os.listdir(tmp_path) == []
