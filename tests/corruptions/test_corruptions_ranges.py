"""Every registered operation declares the range of its parameter; presets outside it are refused.

The contract runs over the registry, so an operation added later is checked without being
listed here: it must declare a Range for each number it takes, the built-in presets must
lie inside, and a preset value just outside either end must be refused with one line
naming the file, the corruption, the severity and the range.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from process_fixtures import environment

from corruptions import CorruptionError, get_operation, list_operations, list_presets, load_preset, registry

OPERATIONS = list_operations()


def _numbers(operation) -> list[str]:
    return list(operation.fields) if operation.fields else [operation.parameter]


@pytest.mark.parametrize("name", OPERATIONS)
def test_every_operation_declares_the_range_of_each_number(name):
    operation = get_operation(name)
    assert set(operation.ranges) == set(_numbers(operation))
    for allowed in operation.ranges.values():
        assert isinstance(allowed, registry.Range) and allowed.low < allowed.high
        assert float("inf") not in (abs(allowed.low), abs(allowed.high))  # a finite range: no 1e308 contrast


def test_registering_an_operation_without_ranges_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "_OPERATIONS", dict(registry._OPERATIONS))
    with pytest.raises(TypeError, match="ranges"):
        registry.register_operation("no_ranges", parameter="amount", unit="u", description="d")
    with pytest.raises(CorruptionError, match="one corruptions.registry.Range for each of amount"):
        registry.register_operation("wrong_ranges", parameter="amount", unit="u", description="d",
                                    ranges={"other": registry.Range(0, 1)})


@pytest.mark.parametrize("preset", list_presets())
def test_built_in_presets_lie_inside_the_declared_ranges(preset):
    loaded = load_preset(preset)
    for entry in loaded.corruptions.values():
        operation = get_operation(entry.operation)
        for value in entry.values:
            numbers = dict(value) if operation.fields and not isinstance(value, float) else {operation.parameter: value}
            for number, amount in numbers.items():
                assert operation.ranges[number].contains(amount), (preset, entry.name, number, amount)


def _valid_value(operation) -> dict | float:
    """A value inside every range: the middle of each (a whole number where asked)."""
    middle = {}
    for number, allowed in operation.ranges.items():
        value = (allowed.low + allowed.high) / 2
        middle[number] = float(round(value)) if allowed.whole else value
    return middle if operation.fields else middle[operation.parameter]


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {v!r}" for k, v in value.items()) + " }"
    return repr(value)


def _outside(allowed) -> list[float]:
    """Values just outside each end (the end itself where it is open)."""
    step = 1.0 if allowed.whole else max(1e-3, (allowed.high - allowed.low) * 1e-3)
    return [allowed.low if allowed.low_open else allowed.low - step,
            allowed.high if allowed.high_open else allowed.high + step]


@pytest.mark.parametrize("name", OPERATIONS)
def test_values_outside_the_range_are_refused_naming_file_corruption_severity_and_range(name, tmp_path):
    operation = get_operation(name)
    for number, allowed in operation.ranges.items():
        for bad in _outside(allowed):
            value = _valid_value(operation)
            value = {**value, number: bad} if isinstance(value, dict) else bad
            preset = tmp_path / "bad.toml"
            preset.write_text(f'[corruptions.probe]\noperation = "{name}"\nvalues = [{_toml(value)}]\n')
            with pytest.raises(CorruptionError) as caught:
                load_preset(str(preset))
            message = str(caught.value)
            assert "\n" not in message and str(preset) in message and "corruptions.probe" in message
            assert "severity 1" in message and allowed.describe() in message and number in message


CLI_CASES = {
    "negative sigma": ('operation = "gaussian_blur"\nvalues = [-1.0, 2.0]', "severity 1 has sigma = -1, outside"),
    "non-monotone severities": ('operation = "gaussian_blur"\nvalues = [2.0, 1.0, 3.0]',
                                "severity 2 has sigma = 1, closer to the clean image (0) than severity 1 (2)"),
    "contrast 1e308": ('operation = "contrast"\nvalues = [0.5, 1e308]', "severity 2 has factor = 1e+308, outside"),
    "resolution factor 0": ('operation = "resolution"\nvalues = [0.0, 2.0]', "severity 1 has factor = 0, outside"),
    "1e8 markup strokes": ('operation = "markup"\nvalues = [{ strokes = 100000000, width = 0.02, alpha = 0.5 }]',
                           "severity 1 has strokes = 100000000, outside the range that operation 'markup' allows: "
                           "[0, 100], whole numbers"),
    "no step away": ('operation = "markup"\nvalues = [{ strokes = 2, width = 0.02, alpha = 0.5 }, '
                     '{ strokes = 2, width = 0.02, alpha = 0.5 }]', "severity 2 (strokes = 2, width = 0.02, alpha = 0.5) "
                     "is no further from the clean image than severity 1"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_robustpath_corruptions_refuses_bad_presets_in_one_line(tmp_path, case):
    body, expected = CLI_CASES[case]
    preset = tmp_path / "mine.toml"
    preset.write_text(f"[corruptions.probe]\n{body}\n")
    completed = subprocess.run([sys.executable, "-m", "robustpath", "corruptions", "--preset", str(preset)],
                               capture_output=True, text=True, env=environment(tmp_path), timeout=120)
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: --preset: {preset}: corruptions.probe.values"), lines
    assert expected in lines[0]
