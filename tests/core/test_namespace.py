import pytest

from speedrun.config._namespace import Namespace


def test_slash_paths_and_attributes():
    ns = Namespace(loss=0.5)
    ns.set("metrics/train/accuracy", 0.9).new("extra", a=1)
    assert ns.metrics.train.accuracy == 0.9
    assert ns.get("metrics/train/accuracy") == 0.9
    assert ns.get("extra/a") == 1
    assert ns.get("metrics/missing", "d") == "d"
    assert ns["loss"] == 0.5
    ns["loss"] = 0.25
    assert ns.loss == 0.25
    assert "loss" in ns and "nothing" not in ns
    assert vars(Namespace(a=1)) == {"a": 1}
    assert Namespace(a=1) == Namespace(a=1) != Namespace(a=2)
    assert repr(Namespace(a=1, b="x")) == "Namespace(a=1, b='x')"
    assert ns.update({"x": 1}).x == 1


def test_errors():
    ns = Namespace(value=3)
    with pytest.raises(KeyError, match="'nothing' is missing"):
        ns.get("nothing/here", ensure_exists=True)
    with pytest.raises(TypeError, match="'value' holds int"):
        ns.set("value/deeper", 1)
