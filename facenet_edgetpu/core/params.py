"""Read and validate `params.yaml`, one stage's section at a time.

Every stage declares the shape of its section as a dict of `Field`s; a value of the wrong
type or out of range stops the stage before it touches any file, with a message that names
the key, the value found and what is allowed.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import yaml

from facenet_edgetpu.core.errors import PipelineError

PARAMS_FILE = "params.yaml"


class ParamsError(PipelineError, ValueError):
    """A params.yaml value is missing, of the wrong type or out of range."""


class Field(object):
    """What one key of a params section may hold.

    Args:
        kind: the Python type expected (int, float, str, bool, list or dict). An int is
            accepted where a float is expected; a bool is never accepted as a number.
        low, high: inclusive bounds for numbers (or for the length of strings/lists).
        choices: the only values allowed.
        optional: the key may be absent; `default` is used then.
    """

    def __init__(self, kind, low=None, high=None, choices=None, optional=False, default=None):
        self.kind = kind
        self.low = low
        self.high = high
        self.choices = choices
        self.optional = optional
        self.default = default

    def describe(self) -> str:
        text = self.kind.__name__
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.low is not None and self.high is not None:
            text += " from {} to {}".format(self.low, self.high)
        elif self.low is not None:
            text += " >= {}".format(self.low)
        elif self.high is not None:
            text += " <= {}".format(self.high)
        return text

    def check(self, key: str, value: Any) -> Any:
        wrong = ParamsError(
            "{}: '{}' must be {}, got {!r} ({}). Fix the value in {} and run again.".format(
                PARAMS_FILE, key, self.describe(), value, type(value).__name__, PARAMS_FILE))
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (
                self.kind in (int, float) and isinstance(value, bool)):
            raise wrong
        if self.choices is not None and value not in self.choices:
            raise wrong
        measure = len(value) if isinstance(value, (str, list, dict)) else value
        if self.low is not None and measure < self.low:
            raise wrong
        if self.high is not None and measure > self.high:
            raise wrong
        return value


def load_params(path: str = PARAMS_FILE) -> Dict[str, Any]:
    """Read the whole params file, with a clear error when it is missing or not a mapping."""
    if not os.path.exists(path):
        raise ParamsError("{} not found in {}: run the stage from the repository root.".format(
            path, os.getcwd()))
    with open(path, "r", encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ParamsError("{} is not valid YAML: {}".format(path, error)) from error
    if not isinstance(data, dict):
        raise ParamsError("{} must hold a mapping of sections, found {}.".format(
            path, type(data).__name__))
    return data


def section(name: str, schema: Mapping[str, Field], params: Optional[Mapping[str, Any]] = None,
            path: str = PARAMS_FILE, partial: bool = False) -> Dict[str, Any]:
    """Return params section `name`, checked against `schema`.

    Unknown keys are refused too: a typo ("min_neighbour") would otherwise be ignored silently.
    `partial=True` is for readers of another stage's section that need only some of its keys.
    """
    if params is None:
        params = load_params(path)
    raw = params.get(name)
    if not isinstance(raw, dict):
        raise ParamsError("{}: section '{}' is missing or not a mapping.".format(path, name))
    unknown = sorted(set(raw) - set(schema))
    if unknown and not partial:
        raise ParamsError("{}: unknown key(s) {} in section '{}'; known keys: {}.".format(
            path, ", ".join(unknown), name, ", ".join(sorted(schema))))
    checked = {}
    for key in sorted(schema):
        field = schema[key]
        dotted = "{}.{}".format(name, key)
        if key not in raw:
            if not field.optional:
                raise ParamsError("{}: '{}' is missing; it must be {}.".format(
                    path, dotted, field.describe()))
            checked[key] = field.default
            continue
        checked[key] = field.check(dotted, raw[key])
    return checked


INPUTS_SCHEMA = {"model": Field(str, low=1), "photos": Field(str, low=1)}


def inputs(params: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The `inputs` section: where the Keras model and the photos are."""
    return section("inputs", INPUTS_SCHEMA, params)

