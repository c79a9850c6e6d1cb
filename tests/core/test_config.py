import copy
import pickle

import pytest

from speedrun._errors import ConfigError
from speedrun.config._tree import Config, ConfigNode, diff_overrides, to_plain


@pytest.fixture
def config():
    return Config({"training": {"lr": 0.1, "optimizer": {"name": "SGD"}}, "layers": [{"w": 3}]})


def test_lookup_paths_and_defaults(config):
    assert config.lookup("training/lr") == 0.1
    assert config.lookup("training/optimizer/name") == "SGD"
    assert config.lookup("/training/lr/") == 0.1
    assert config.lookup("training/missing", 42) == 42
    assert config.lookup("training/lr/deeper", "d") == "d"  # a scalar has no children
    assert config.lookup("layers/0/w") == 3
    assert config.lookup("layers/5/w", None) is None


def test_lookup_ensure_exists_names_missing_key(config):
    with pytest.raises(ConfigError, match="expected key 'momentum' under training") as info:
        config.lookup("training/momentum", ensure_exists=True)
    assert "--config.training.momentum" in str(info.value)


def test_integer_keys_from_yaml_are_reachable():
    config = Config({"classes": {1: "cat", 2: "dog"}})
    assert config.lookup("classes/2") == "dog"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.lookup("training").__setitem__("lr", 0.5),
        lambda c: c.lookup("training").update(lr=0.5),
        lambda c: c.lookup("training").update({"lr": 0.5}),
        lambda c: c.lookup("training").__ior__({"lr": 0.5}),
        lambda c: (c.lookup("training").pop("lr"), c.lookup("training").setdefault("lr", 0.5)),
        lambda c: (c.lookup("training").clear(), c.lookup("training").__setitem__("lr", 0.5)),
        lambda c: c.assign("training/lr", 0.5),
        lambda c: c.__setitem__("training", {"lr": 0.5}),
        lambda c: c.replace({"training": {"lr": 0.5}}),
    ],
)
def test_memo_never_serves_stale_values(config, mutate):
    assert config.lookup("training/lr") == 0.1  # now memoised
    mutate(config)
    assert config.lookup("training/lr") == 0.5


def test_deleting_clears_memo(config):
    assert config.lookup("training/lr") == 0.1
    del config.lookup("training")["lr"]
    assert config.lookup("training/lr", "gone") == "gone"
    config.lookup("training").popitem()
    assert config.lookup("training/optimizer/name", "gone") == "gone"


def test_inserted_mappings_become_tracked_nodes(config):
    config.assign("model", {"kwargs": {"depth": 2}})
    inner = config.lookup("model/kwargs")
    assert isinstance(inner, ConfigNode)
    assert config.lookup("model/kwargs/depth") == 2
    inner["depth"] = 5
    assert config.lookup("model/kwargs/depth") == 5


def test_list_paths_are_not_memoised(config):
    assert config.lookup("layers/0/w") == 3
    config.lookup("layers")[0]["w"] = 4
    assert config.lookup("layers/0/w") == 4


def test_assign_refuses_to_overwrite_a_scalar_parent(config):
    with pytest.raises(ConfigError, match="'training/lr' holds float"):
        config.assign("training/lr/value", 1)
    assert config.lookup("training/lr") == 0.1


def test_pickle_and_deepcopy_rebuild_a_tracked_tree(config):
    for clone in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config)):
        assert type(clone) is Config and clone == config
        assert clone.lookup("training/lr") == 0.1
        clone.lookup("training")["lr"] = 9
        assert clone.lookup("training/lr") == 9
        assert config.lookup("training/lr") == 0.1


def test_to_plain_makes_plain_copies(config):
    plain = to_plain(config)
    assert type(plain) is dict and type(plain["training"]) is dict
    plain["training"]["lr"] = 1
    assert config.lookup("training/lr") == 0.1


def test_diff_overrides_reports_new_keys_and_type_changes(config):
    findings = diff_overrides(
        config,
        [
            ("training/lr", 1),  # int for float: fine
            ("training/lrr", 0.2),  # typo: new key
            ("training/optimizer/name", 3),  # str -> int
            ("training/optimizer", {"name": "Adam"}),  # mapping for mapping: fine
        ],
    )
    assert findings == [
        "training/lrr: new key (not in the base config), set to 0.2",
        "training/optimizer/name: type changes from str ('SGD') to int (3)",
    ]


def test_diff_overrides_is_silent_for_configs_built_from_flags():
    assert diff_overrides({}, [("a/b", 1)]) == []


def test_diff_overrides_bool_and_int_are_different():
    assert diff_overrides({"flag": True}, [("flag", 1)]) == [
        "flag: type changes from bool (True) to int (1)"
    ]
    assert diff_overrides({"n": None}, [("n", 3)]) == []
