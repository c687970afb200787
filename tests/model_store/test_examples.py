"""The examples file format: one event and one expectation a line."""

from __future__ import annotations

import pytest

from model_store.examples import Answer, Expectation, parse_examples
from streamscore.exceptions import ModelStoreError


def test_each_kind_parses_with_its_line_and_default_name():
    data = b"""# corner cases
{"name": "benign", "event": {"x": 1}, "expect": {"class": 1}}
{"event": {"x": 2}, "expect": {"probability": {"class": "yes", "min": 0.9}}}

{"event": {"x": 3}, "expect": {"range": {"max": 250}}}
{"event": {}, "expect": {"dead_letter": "schema"}}
"""
    a, b, c, d = parse_examples(data)
    assert (a.name, a.line, a.expect) == ("benign", 2, Expectation("class", 1))
    assert (b.name, b.expect) == ("line 3", Expectation("probability", "yes", 0.9, None))
    assert (c.line, c.expect) == (5, Expectation("range", None, None, 250.0))
    assert d.expect == Expectation("dead_letter", "schema")
    assert a.label == "'benign' (line 2)" and b.label == "line 3"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "expected a JSON object"),
        (b'{"event": {}, "expect": {}}', "exactly one of"),
        (b'{"event": {}, "expect": {"class": 1, "range": {"min": 0}}}', "exactly one of"),
        (b'{"event": {}, "expect": {"label": 1}}', "exactly one of"),
        (b'{"event": 3, "expect": {"class": 1}}', '"event" must be a JSON object'),
        (b'{"event": {}, "expect": {"class": 1}, "why": "x"}', "unknown key 'why'"),
        (b'{"event": {}, "expect": {"probability": {"min": 0.5}}}', 'needs the "class"'),
        (b'{"event": {}, "expect": {"range": {}}}', 'needs "min", "max" or both'),
        (b'{"event": {}, "expect": {"range": {"min": 2, "max": 1}}}', "min 2 above max 1"),
        (b'{"event": {}, "expect": {"range": {"min": "1"}}}', "must be a finite number"),
        (b'{"event": {}, "expect": {"dead_letter": "decode"}}', "one of schema, predict"),
    ],
)
def test_a_malformed_line_is_refused_with_file_line_and_format(line, problem):
    with pytest.raises(ModelStoreError) as refused:
        parse_examples(b"# header\n" + line + b"\n", where="ex.jsonl")
    assert str(refused.value).startswith("ex.jsonl:2: ")
    assert problem in str(refused.value) and '"expect"' in str(refused.value)


def test_an_empty_file_is_refused():
    with pytest.raises(ModelStoreError, match=r"no examples in it"):
        parse_examples(b"# nothing\n\n", where="ex.jsonl")


SCORED = Answer(1, {"0": 0.2, "1": 0.8})
DEAD = Answer(stage="schema", reason='feature "x" missing')


@pytest.mark.parametrize(
    ("expect", "answer", "passed"),
    [
        (Expectation("class", 1), SCORED, True),
        (Expectation("class", 0), SCORED, False),
        (Expectation("class", 1), DEAD, False),
        (Expectation("probability", 1, 0.7, None), SCORED, True),
        (Expectation("probability", 1, None, 0.5), SCORED, False),
        (Expectation("probability", 2, 0.0, None), SCORED, False),  # not a class of the model
        (Expectation("probability", 1, 0.5, None), Answer(3.0), False),  # a regressor
        (Expectation("range", None, 2.5, 3.5), Answer(3.0), True),
        (Expectation("range", None, 3.5, None), Answer(3.0), False),
        (Expectation("range", None, 0.0, 2.0), Answer("benign"), False),
        (Expectation("dead_letter", "schema"), DEAD, True),
        (Expectation("dead_letter", "predict"), DEAD, False),
        (Expectation("dead_letter", "schema"), SCORED, False),
    ],
)
def test_judge(expect, answer, passed):
    assert expect.judge(answer) is passed
