"""Sizes, times, flags as nginx parses them."""
from __future__ import annotations

import pytest

from ngate.config.regex import translate
from ngate.config.values import parse_flag, parse_size, parse_time


@pytest.mark.parametrize("text,value", [
    ("512", 512), ("1k", 1024), ("1K", 1024), ("10m", 10 * 1024 ** 2), ("1g", 1024 ** 3)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text,value", [
    ("75", 75.0), ("30s", 30.0), ("500ms", 0.5), ("1h 30m", 5400.0), ("1h30m", 5400.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1M", 30 * 86400.0), ("1y", 365 * 86400.0),
    ("2m 5s 10ms", 125.01)])
def test_times(text, value):
    assert parse_time(text) == pytest.approx(value)


@pytest.mark.parametrize("parse,text", [
    (parse_size, "1x"), (parse_size, ""), (parse_size, "-1"), (parse_size, "1.5m"),
    (parse_time, "30m 1h"), (parse_time, "1x"), (parse_time, ""), (parse_time, "5 6"),
    (parse_flag, "yes"), (parse_flag, "")])
def test_invalid_values(parse, text):
    with pytest.raises(ValueError):
        parse(text)


def test_ms_not_allowed_for_seconds():
    with pytest.raises(ValueError):
        parse_time("500ms", allow_ms=False)
    assert parse_time("10s", allow_ms=False) == 10.0


@pytest.mark.parametrize("text,value", [("on", True), ("OFF", False), ("On", True)])
def test_flags(text, value):
    assert parse_flag(text) is value


@pytest.mark.parametrize("pcre,python", [
    ("^/(?<id>\\d+)$", "^/(?P<id>\\d+)$"), ("(?'n'a)\\k<n>", "(?P<n>a)(?P=n)"),
    ("a\\z", "a\\Z"), ("(?<=a)b", "(?<=a)b"), ("\\(?<x>", "\\(?<x>")])
def test_regex_translation(pcre, python):
    assert translate(pcre) == (python, False)
