"""Memory amounts for --wait.memory: units, errors, formatting, and the real free-RAM reading."""

from __future__ import annotations

import psutil
import pytest

from speedrun import ArgumentError
from speedrun.mixins.waiter import MEMORY_UNITS, parse_memory_size
from speedrun.mixins.waiter._memory import available_memory, format_bytes, total_memory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GB", 8 * 1000**3),
        ("8gb", 8 * 1000**3),
        ("8 Gb", 8 * 1000**3),
        ("  8GB  ", 8 * 1000**3),
        ("1.5GB", 1_500_000_000),
        (".5 KB", 500),
        ("512B", 512),
        ("512b", 512),
        ("3KB", 3000),
        ("3MB", 3_000_000),
        ("2TB", 2 * 1000**4),
        ("1KiB", 1024),
        ("1kib", 1024),
        ("4MiB", 4 * 1024**2),
        ("2GiB", 2 * 1024**3),
        ("2GIB", 2 * 1024**3),
        ("1TiB", 1024**4),
        ("0GB", 0),
        ("1.0000000001B", 2),  # fractions of a byte round up: never ask for less than written
    ],
)
def test_units_are_case_insensitive_decimal_and_binary(text: str, expected: int) -> None:
    assert parse_memory_size(text) == expected


def test_documented_units_table() -> None:
    assert MEMORY_UNITS["GB"] == 10**9 and MEMORY_UNITS["GiB"] == 2**30
    assert set(MEMORY_UNITS) == {"B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"}


@pytest.mark.parametrize("value", [16, 16.0, "16", "16 "])
def test_bare_numbers_are_refused_because_the_unit_is_ambiguous(value: object) -> None:
    with pytest.raises(ArgumentError, match="needs a unit") as info:
        parse_memory_size(value)
    assert "16GB" in str(info.value) and "16GiB" in str(info.value)


def test_unknown_unit_names_the_accepted_units() -> None:
    with pytest.raises(ArgumentError) as info:
        parse_memory_size("5 XB")
    message = str(info.value)
    assert "'XB'" in message
    assert "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB" in message


def test_slurm_style_single_letter_gets_a_hint() -> None:
    with pytest.raises(ArgumentError, match="'GB' .*'GiB'"):
        parse_memory_size("8G")


@pytest.mark.parametrize("value", ["-1GB", "GB", "", "eight GB", "1e9B", "8GB of RAM"])
def test_malformed_amounts(value: str) -> None:
    with pytest.raises(ArgumentError, match="expects a non-negative number followed by a unit"):
        parse_memory_size(value)


@pytest.mark.parametrize("value", [True, None, [8], {"GB": 8}])
def test_wrong_types(value: object) -> None:
    with pytest.raises(ArgumentError, match="memory amount with a unit"):
        parse_memory_size(value)


def test_error_names_the_setting() -> None:
    with pytest.raises(ArgumentError, match=r"^--wait\.memory "):
        parse_memory_size("8 parsecs")
    with pytest.raises(ArgumentError, match=r"^memory "):
        parse_memory_size("8 parsecs", what="memory")


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1_500_000, "1.5 MB"),
        (8 * 10**9, "8.0 GB"),
        (3 * 10**12, "3.0 TB"),
    ],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text


def test_readings_match_psutil() -> None:
    reading = psutil.virtual_memory()
    assert total_memory() == reading.total
    # Free memory moves between two readings; both must be plausible numbers of bytes.
    assert 0 < available_memory() <= total_memory()
