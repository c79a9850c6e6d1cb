from speedrun.experiment._dispatch import (
    find_marked,
    register_default_dispatch,
    register_hook,
    register_pre_dispatch_hook,
)


class Base:
    def first(self):
        return 1

    register_hook(first, "clean_up")

    @register_pre_dispatch_hook
    def prepare(self):
        return "ready"


class Child(Base):
    @register_default_dispatch
    def train(self):
        return "trained"

    def second(self):
        return 2

    register_hook(second, "clean_up")

    def prepare(self):  # overriding without marking unmarks it
        return "not a hook any more"


def test_hooks_in_base_first_then_definition_order():
    assert find_marked(Child, "clean_up") == ["first", "second"]


def test_override_without_mark_unmarks():
    assert find_marked(Base, "pre_dispatch") == ["prepare"]
    assert find_marked(Child, "pre_dispatch") == []


def test_default_dispatch_mark():
    assert find_marked(Child, None) == ["train"]
    assert find_marked(Base, None) == []


def test_register_hook_rejects_non_callables():
    import pytest

    with pytest.raises(TypeError, match="expects a function"):
        register_hook(3, "clean_up")
