"""Words -> detector classes (edge/vocabulary.py)."""

from __future__ import annotations

import pytest

from edge.vocabulary import UnknownClassError, parse_class_values, resolve_classes


@pytest.mark.parametrize("words, expected", [
    ("person", ["person"]),
    ("people", ["person"]),
    ("Pedestrians", ["person"]),
    ("person, dogs", ["person", "dog"]),
    ("dogs and cats", ["dog", "cat"]),
    ("buses", ["bus"]),
    ("knives", ["knife"]),
    ("traffic-lights", ["traffic light"]),
    ("cell phones", ["cell phone"]),
    ("cellphone", ["cell phone"]),
    ("teddy_bears", ["teddy bear"]),
    ("bike", ["bicycle"]),
    ("people, person, humans", ["person"]),
    ("faces", ["face"]),
])
def test_words_map_to_classes(words, expected):
    assert resolve_classes(words) == expected


def test_vehicle_synonym_expands_to_road_vehicles():
    got = resolve_classes("vehicles")
    assert {"car", "truck", "bus", "motorcycle"} <= set(got)
    assert "person" not in got


def test_unknown_word_lists_known_classes():
    with pytest.raises(UnknownClassError) as err:
        resolve_classes("person, unicorn")
    msg = str(err.value)
    assert "'unicorn'" in msg
    for cls in ("person", "car", "toothbrush"):  # the list of known classes
        assert cls in msg
    assert err.value.word == "unicorn"


def test_misspelling_gets_a_suggestion():
    with pytest.raises(UnknownClassError, match="Did you mean person"):
        resolve_classes("persn")


def test_words_limited_to_the_detector_vocabulary():
    with pytest.raises(UnknownClassError):
        resolve_classes("dog", known=["person", "car"])
    assert resolve_classes("vehicles", known=["person", "car"]) == ["car"]


def test_class_values():
    assert parse_class_values("people=0.9, vehicles=0.5")["person"] == 0.9
    assert parse_class_values("people=0.9, vehicles=0.5")["truck"] == 0.5
    with pytest.raises(ValueError):
        parse_class_values("person")
