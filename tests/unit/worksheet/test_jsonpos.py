"""Positions in a JSON text, for findings on Questionnaires built elsewhere."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rejection_fhir.worksheet.jsonpos import json_positions, position_of

TEXT = """{
  "resourceType": "Questionnaire",
  "item": [
    {"linkId": "a", "type": "choice",
     "repeats": "yes", "x": [1, {"y": null}], "s": "q\\"u"}
  ]
}"""


def test_fields_point_at_their_key_and_entries_at_their_value():
    positions = json_positions(TEXT)
    assert positions["item[0].repeats"] == (5, 6)
    assert positions["item[0]"] == (4, 5)
    assert positions["item[0].x[1].y"] == (5, 34)
    assert positions["item[0].s"] == (5, 47)


def test_a_missing_path_falls_back_to_its_nearest_parent():
    positions = json_positions(TEXT)
    assert position_of(positions, "item[0].answerOption[3].valueCoding") == (4, 5)
    assert position_of(positions, "") == (1, 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values, st.sampled_from([None, 2]))
def test_every_position_is_where_the_text_has_that_element(value, indent):
    text = json.dumps(value, indent=indent)
    lines = text.splitlines()
    for path, (line, column) in json_positions(text).items():
        assert 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]) + 1, path
        char = lines[line - 1][column - 1]
        assert char in '"{[-0123456789tfnNI', (path, char)
