import pytest

from speedrun._errors import ArgumentError
from speedrun.config._arguments import parse_arguments, parse_literal


def parse(*tokens):
    return parse_arguments(["train.py", *tokens])


def test_positional_directory_and_overrides():
    args = parse(
        "experiments/RUN-1",
        "--inherit",
        "experiments/RUN-0",
        "--config.a.b",
        "3",
        "--config.training.lr=0.01",
        "--config.name",
        "resnet",
    )
    assert args.positionals == ["experiments/RUN-1"]
    assert args.flags["inherit"] == "experiments/RUN-0"
    assert args.parsed_overrides() == [("a/b", 3), ("training/lr", 0.01), ("name", "resnet")]


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3),
        ("0.1", 0.1),
        ("-2", -2),
        ("[1, 2]", [1, 2]),
        ("{'a': 1}", {"a": 1}),
        ("True", True),
        ("None", None),
        ("(1, 2)", (1, 2)),
        ("Adam", "Adam"),
        ("1e-3", 1e-3),
        ("experiments/RUN-0", "experiments/RUN-0"),
        ("", ""),
    ],
)
def test_parse_literal(text, value):
    assert parse_literal(text) == value


def test_bare_boolean_flag_never_swallows_the_directory():
    args = parse("--purge", "experiments/RUN-0")
    assert args.positionals == ["experiments/RUN-0"]
    assert args.get("purge") is True


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (("RUN", "--purge", "True"), True),
        (("RUN", "--purge", "False"), False),
        (("RUN", "--purge"), True),
        (("RUN", "--purge=false"), False),
        (("RUN",), None),
        (("RUN", "--resume", "--config.a", "1"), True),
    ],
)
def test_purge_forms(tokens, expected):
    args = parse(*tokens)
    assert args.get("purge", args.get("resume")) is expected
    assert args.positionals == ["RUN"]


def test_negative_numbers_are_values_not_flags():
    assert parse("RUN", "--config.shift", "-0.5").parsed_overrides() == [("shift", -0.5)]


def test_flag_before_directory_is_not_the_directory():
    args = parse("--inherit", "experiments/RUN-0", "experiments/RUN-1")
    assert args.positionals == ["experiments/RUN-1"]


@pytest.mark.parametrize(
    "tokens, message",
    [
        (
            ("RUN", "--inherit"),
            r"--inherit expects a value \(e.g. --inherit experiments/RUN-0\), but got nothing",
        ),
        (("RUN", "--config.a.b"), "--config.a.b expects a value"),
        (("RUN", "--config.a.b", "--purge"), "but got '--purge'"),
        (("RUN", "--dispatch", "--config.a", "1"), "--dispatch expects a value"),
        (("RUN", "--macro"), "--macro expects a value"),
        (("RUN", "--purge=maybe"), "--purge takes True or False"),
        (("RUN", "--config.=3"), "expected --config.<key>"),
        (("RUN", "--config.a..b", "3"), "expected --config.<key>"),
        (("RUN", "--=3"), "expected a flag name"),
    ],
)
def test_malformed_command_lines(tokens, message):
    with pytest.raises(ArgumentError, match=message):
        parse(*tokens)


def test_user_flags_and_double_dash():
    args = parse("RUN", "--blah", "42", "--verbose", "--", "--not-a-flag")
    assert args.get("blah") == 42
    assert args.get("verbose") is True
    assert args.positionals == ["RUN", "--not-a-flag"]


def test_last_value_wins_but_all_overrides_are_kept_in_order():
    args = parse("RUN", "--config.a", "1", "--config.a", "2")
    assert args.parsed_overrides() == [("a", 1), ("a", 2)]
    assert args.get("config.a") == 2


def test_parse_setup_returns_plain_data():
    from speedrun.config._arguments import SetupRequest, parse_setup

    request = parse_setup(
        parse(
            "RUN-1",
            "--inherit",
            "RUN-0",
            "--macro",
            "a.yml",
            "--config.training.lr",
            "0.1",
            "--strict",
            "--dispatch",
            "eval",
            "--lr",
            "3",
            "--wait.for",
            "12",
            "--width",
            "2",
        ),
        declared=("wait.",),
    )
    assert isinstance(request, SetupRequest)
    assert (request.directory, request.inherit, request.macros, request.dispatch) == (
        "RUN-1",
        "RUN-0",
        "a.yml",
        "eval",
    )
    assert request.overrides == (("training/lr", 0.1),) and request.strict
    assert not (request.resume or request.purge or request.any_class)
    assert request.unknown_flags == ("lr", "width")
    with pytest.raises(AttributeError):
        request.resume = True  # immutable


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("conifg.a.b", "config.a.b"),
        ("resmue", "resume"),
        ("Resume", "resume"),
        ("purg", "purge"),
        ("dispach", "dispatch"),
        ("inheret", "inherit"),
        ("macros", "macro"),
        ("any_class", "any-class"),
        ("strickt", "strict"),
        ("config", "config.<key>"),
    ],
)
def test_flags_one_edit_from_speedruns_are_typos(typed, meant):
    from speedrun.config._arguments import parse_setup, suggest_flag

    assert suggest_flag(typed) == meant
    with pytest.raises(ArgumentError, match=f"did you mean --{meant}"):
        parse_setup(parse("RUN", f"--{typed}", "1"))


@pytest.mark.parametrize("name", ["lr", "stride", "strides", "seed", "wait.for", "note"])
def test_other_flags_are_not_typos(name):
    from speedrun.config._arguments import suggest_flag

    assert suggest_flag(name) is None


def test_contradictory_flags():
    from speedrun.config._arguments import parse_setup

    with pytest.raises(ArgumentError, match="pass one"):
        parse_setup(parse("RUN", "--resume", "--purge"))
    with pytest.raises(ArgumentError, match="drop --inherit"):
        parse_setup(parse("RUN", "--resume", "--inherit", "X"))
