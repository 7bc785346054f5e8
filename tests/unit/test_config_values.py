"""Sizes, times, flags as nginx parses them."""
from __future__ import annotations

import pytest

from ngate.config.regex import translate
from ngate.config.values import (parse_flag, parse_number, parse_offset, parse_size,
                                 parse_time)

MAX = 2 ** 63 - 1          # NGX_MAX_INT_T_VALUE, NGX_MAX_SIZE_T_VALUE, NGX_MAX_OFF_T_VALUE


@pytest.mark.parametrize("text,value", [
    ("512", 512), ("1k", 1024), ("1K", 1024), ("10m", 10 * 1024 ** 2), (str(MAX), MAX)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text,value", [
    ("1g", 1024 ** 3), ("1G", 1024 ** 3), (f"{MAX // 1024 ** 3}g", MAX // 1024 ** 3 * 1024 ** 3)])
def test_offsets(text, value):
    assert parse_offset(text) == value


@pytest.mark.parametrize("text,value", [
    ("75", 75.0), ("30s", 30.0), ("500ms", 0.5), ("1h 30m", 5400.0), ("1h30m", 5400.0),
    ("1d", 86400.0), ("1w", 604800.0), ("2m 5s 10ms", 125.01),
    # ngx_parse_time's corners: a trailing unitless number is seconds, a space ends a number
    ("5 6", 11.0), ("1s5", 6.0), (" 30", 30.0), ("30 ", 30.0),
    (f"{MAX // 1000}s", MAX // 1000), (f"{MAX}ms", MAX / 1000)])
def test_times(text, value):
    assert parse_time(text) == pytest.approx(value)


@pytest.mark.parametrize("parse,text", [
    (parse_size, "1x"), (parse_size, ""), (parse_size, "-1"), (parse_size, "1.5m"),
    (parse_size, "1g"), (parse_size, str(MAX + 1)), (parse_size, f"{MAX // 1024 + 1}k"),
    (parse_size, "\u0663"), (parse_size, "k"), (parse_offset, f"{MAX // 1024 ** 3 + 1}g"),
    (parse_number, str(MAX + 1)), (parse_number, "\u00b2"), (parse_number, "9" * 5000),
    (parse_time, "30m 1h"), (parse_time, "1x"), (parse_time, ""), (parse_time, "s"),
    (parse_time, "1y"), (parse_time, "1M"), (parse_time, "1s 2s"), (parse_time, "\u0663s"),
    (parse_time, f"{MAX // 1000 + 1}s"), (parse_time, f"{MAX + 1}ms"), (parse_time, "9" * 400 + "s"),
    (parse_flag, "yes"), (parse_flag, "")])
def test_invalid_values(parse, text):
    with pytest.raises(ValueError):
        parse(text)


def test_second_values_take_years_and_months():
    assert parse_time("1y 1M", allow_ms=False) == 365 * 86400 + 30 * 86400


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
