"""Load Keras 2.x h5 models whose `Lambda` layers hold Python 3.5-3.7 bytecode, on any Python.

Keras 2.x saves a `Lambda` layer's function as `marshal.dumps(function.__code__)`, base64-encoded
(Keras >= 2.1) or decoded as `raw_unicode_escape` text (older Keras 2.0). This module finds the
Lambda layers in the model config, has `facenet_edgetpu.lambda_bytecode` translate their
bytecode into lambda source (never executing it), or takes the source the user supplies in
params.yaml (`float_model.lambda_functions`, layer name -> lambda expression;
`load_model(..., lambda_sources=...)` in Python), compiles that source on the running Python,
and hands the functions to Keras through its public mechanism: the layer config is rewritten to
`function_type: 'function'` naming an entry of `custom_objects`, then
`tf.keras.models.model_from_json` builds the model and `Model.load_weights` reads the weights
from the same file (`load_model`).

A Lambda layer whose bytecode cannot be translated raises `UntranslatableLambdaError`, whose
message shows the decoded bytecode (or which Python wrote it, for Python 3.8+) and says how to
supply the source by hand.

Works on Python 3.7+ with TF 1.15 and TF 2.x (Keras 2 API). TensorFlow is imported only by
`load_model`, so everything else runs without it.
"""
from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import json
import math
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lambda_bytecode import (
    BytecodeError, CodeObject, NewerPythonError, UntranslatableError, disassemble, lambda_source,
    read_marshal)
from facenet_edgetpu.lib.keras_h5 import read_model_config

# Every TensorFlow attribute path this module uses, relative to the `tensorflow` module. The same
# code runs under TF 1.15 and TF 2.x, so a test can check each path against both APIs.
TF_API = (
    "keras.backend",
    "keras.models.model_from_json",
    "keras.Model.load_weights",
)

PARAMS_KEY = "float_model.lambda_functions"


class LegacyKerasError(PipelineError):
    """The h5 file or one of its Lambda layers cannot be loaded; the message says what to do."""


class UntranslatableLambdaError(LegacyKerasError):
    """A Lambda layer's bytecode is beyond the translator; supply its source by hand."""

    def __init__(self, message: str, layer: Optional[str] = None,
                 disassembly: Optional[str] = None) -> None:
        super().__init__(message)
        self.layer = layer
        self.disassembly = disassembly


class LambdaLayer(NamedTuple):
    """How one Lambda layer's function (or output_shape) gets its source."""
    layer: str
    key: str                        # "function" or "output_shape"
    source: str
    origin: str                     # "translated", "params" or "dropped" (output_shape only)
    global_names: Tuple[str, ...]
    closure: Dict[str, Any]         # free variable -> value saved by Keras


def keras_code_bytes(text: Any) -> bytes:
    """The marshal bytes of a Keras `func_dump` code string (base64, or raw_unicode_escape)."""
    if not isinstance(text, str) or not text:
        raise LegacyKerasError("expected the function's code as a string, got {!r}".format(
            type(text).__name__))
    if text[0] in ("\xe3", "c"):
        # Keras 2.0: marshal.dumps(code).decode('raw_unicode_escape'); a code object marshals
        # to 'c' (0x63) or, with the reference flag, 0xe3.
        return text.encode("raw_unicode_escape")
    try:
        return base64.b64decode(text.encode("ascii"))
    except (UnicodeEncodeError, ValueError) as error:
        raise LegacyKerasError("the function's code is neither base64 nor raw marshal text "
                               "({})".format(error)) from error


def _split_keras_function(entry: Any) -> Tuple[str, Sequence[Any], Sequence[Any]]:
    """(code text, defaults, closure) from a Keras function entry (a list or a bare string)."""
    if isinstance(entry, str):
        return entry, (), ()
    if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
        defaults = entry[1] if len(entry) > 1 and entry[1] is not None else ()
        closure = entry[2] if len(entry) > 2 and entry[2] is not None else ()
        return entry[0], list(defaults), list(closure)
    raise LegacyKerasError("unexpected layout of a Lambda function entry: {!r}".format(
        entry if len(repr(entry)) < 200 else type(entry).__name__))


def _how_to_supply(layer: str, arguments: Mapping[str, Any]) -> str:
    args = ", ".join(["inputs"] + sorted(arguments))
    return (
        "Supply the function as Python lambda source in params.yaml, under "
        "{key} (layer name -> lambda expression):\n"
        "  {section}:\n"
        "    {name}:\n"
        "      {layer}: \"lambda {args}: ...\"\n"
        "(in Python: load_model(..., lambda_sources={{{layer!r}: \"lambda {args}: ...\"}})). "
        "Keras calls it as function(inputs, **arguments) with arguments={arguments}.".format(
            key=PARAMS_KEY, section=PARAMS_KEY.split(".")[0], name=PARAMS_KEY.split(".")[1],
            layer=layer, args=args, arguments=dict(arguments)))


def translate_keras_function(entry: Any, layer: str = "?", arguments: Optional[Mapping] = None,
                             key: str = "function") -> LambdaLayer:
    """Translate one marshalled Keras function entry into a `LambdaLayer`."""
    arguments = arguments or {}
    text, defaults, closure = _split_keras_function(entry)
    decoded = None
    try:
        code = read_marshal(keras_code_bytes(text))
        if not isinstance(code, CodeObject):
            raise LegacyKerasError("the marshal data holds a {}, not a code object".format(
                type(code).__name__))
        decoded = disassemble(code)
        translation = lambda_source(code, defaults)
    except NewerPythonError as error:
        raise UntranslatableLambdaError(
            "Lambda layer '{}': its {} cannot be translated: {}.\n{}".format(
                layer, key, error, _how_to_supply(layer, arguments)),
            layer=layer) from error
    except UntranslatableError as error:
        raise UntranslatableLambdaError(
            "Lambda layer '{}': its {} cannot be translated from Python bytecode: {}.\n"
            "Decoded bytecode:\n{}\n{}".format(layer, key, error, error.disassembly,
                                               _how_to_supply(layer, arguments)),
            layer=layer, disassembly=error.disassembly) from error
    except (BytecodeError, LegacyKerasError) as error:
        so_far = "Decoded so far:\n{}\n".format(decoded) if decoded else ""
        raise UntranslatableLambdaError(
            "Lambda layer '{}': its {} cannot be decoded: {}.\n{}{}".format(
                layer, key, error, so_far, _how_to_supply(layer, arguments)),
            layer=layer, disassembly=decoded) from error
    if len(closure) != len(code.freevars):
        raise UntranslatableLambdaError(
            "Lambda layer '{}': the function reads closure variable(s) {} but the file saved {} "
            "value(s) for them.\nDecoded bytecode:\n{}\n{}".format(
                layer, ", ".join(code.freevars), len(closure), decoded,
                _how_to_supply(layer, arguments)), layer=layer, disassembly=decoded)
    return LambdaLayer(layer, key, translation.source, "translated", translation.global_names,
                       dict(zip(code.freevars, closure)))


def parse_lambda_source(source: Any, where: str = "lambda source") -> ast.Lambda:
    """Parse `source`, which must be exactly one lambda expression; return its ast node.

    Nothing is executed here; statements, or any expression other than a lambda, are refused.
    """
    example = "\"lambda inputs, scale: inputs[0] + inputs[1] * scale\""
    if not isinstance(source, str) or not source.strip():
        raise LegacyKerasError("{} must be a non-empty string holding a Python lambda "
                               "expression such as {}, got {!r}.".format(where, example, source))
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise LegacyKerasError(
            "{} is not a single Python expression ({}: {}); it must be a lambda expression "
            "such as {}, got {!r}.".format(where, type(error).__name__, error.msg, example,
                                           source)) from error
    if not isinstance(tree.body, ast.Lambda):
        raise LegacyKerasError("{} must be a lambda expression such as {}, got a {} "
                               "expression: {!r}.".format(where, example,
                                                          type(tree.body).__name__, source))
    return tree.body


def _accepted_keywords(node: ast.Lambda) -> Optional[set]:
    """Names the lambda accepts as keyword arguments; None when it takes **kwargs."""
    if node.args.kwarg is not None:
        return None
    args = list(getattr(node.args, "posonlyargs", [])) + list(node.args.args)
    return {arg.arg for arg in args[1:]} | {arg.arg for arg in node.args.kwonlyargs}


def compile_lambda(source: str, namespace: Mapping[str, Any], where: str = "lambda source"):
    """Compile lambda source into a function whose globals are `namespace` (plus builtins)."""
    node = parse_lambda_source(source, where)
    tree = ast.Expression(body=node)
    ast.fix_missing_locations(tree)
    code = compile(tree, "<{}>".format(where), "eval")
    scope = dict(namespace)
    scope.setdefault("__builtins__", builtins)
    return eval(code, scope)  # noqa: S307 - a checked lambda expression, see parse_lambda_source


# --------------------------------------------------------------------------------------------
# Model config
# --------------------------------------------------------------------------------------------

def _walk_layers(config: Any) -> Iterator[Dict[str, Any]]:
    """Every layer dict of a model config, nested models included."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    if not isinstance(layers, list):
        return
    for layer in layers:
        if isinstance(layer, dict):
            yield layer
            for nested in _walk_layers(layer):
                yield nested


def _layer_name(layer: Dict[str, Any]) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name") or "?")


_MARSHALLED_KEYS = (("function", "function_type"), ("output_shape", "output_shape_type"))


def _user_supplied(layer: str, source: Any, arguments: Mapping[str, Any]) -> LambdaLayer:
    """A layer's function from source the user supplied, checked against how Keras calls it."""
    where = "{}.{}".format(PARAMS_KEY, layer)
    node = parse_lambda_source(source, where)
    if not node.args.args and not node.args.vararg:
        raise LegacyKerasError("{}: the lambda must take the layer input as its first "
                               "argument, e.g. \"lambda inputs{}: ...\"".format(
                                   where, "".join(", " + a for a in sorted(arguments))))
    accepted = _accepted_keywords(node)
    missing = sorted(set(arguments) - accepted) if accepted is not None else []
    if missing:
        raise LegacyKerasError(
            "{}: Keras calls the function with keyword argument(s) {} (the layer's "
            "'arguments' {}), which the lambda does not accept: {!r}".format(
                where, ", ".join(missing), dict(arguments), source))
    return LambdaLayer(layer, "function", source.strip(), "params", (), {})


def lambda_layers(config: Dict[str, Any],
                  lambda_sources: Optional[Mapping[str, str]] = None) -> List[LambdaLayer]:
    """Work out the source of every Lambda function in a model config (no TensorFlow needed).

    `lambda_sources` (layer name -> lambda source) wins over translation. A name there that is
    not a Lambda layer of the model is an error (a typo would otherwise be ignored silently).
    """
    lambda_sources = dict(lambda_sources or {})
    layers = [layer for layer in _walk_layers(config) if layer.get("class_name") == "Lambda"]
    names = [_layer_name(layer) for layer in layers]
    unknown = sorted(set(lambda_sources) - set(names))
    if unknown:
        raise LegacyKerasError(
            "{} names {} which {} not a Lambda layer of the model; its Lambda layers are: {}"
            .format(PARAMS_KEY, ", ".join(repr(n) for n in unknown),
                    "is" if len(unknown) == 1 else "are", ", ".join(names) or "none"))
    found = []
    for layer, name in zip(layers, names):
        layer_config = layer.get("config", {})
        arguments = layer_config.get("arguments") or {}
        if name in lambda_sources:
            found.append(_user_supplied(name, lambda_sources[name], arguments))
        elif layer_config.get("function_type") == "lambda":
            found.append(translate_keras_function(layer_config.get("function"), name,
                                                  arguments, "function"))
        if layer_config.get("output_shape_type") == "lambda":
            try:
                found.append(translate_keras_function(layer_config.get("output_shape"), name,
                                                      {}, "output_shape"))
            except UntranslatableLambdaError:
                # Keras infers the output shape by calling the function when none is given.
                found.append(LambdaLayer(name, "output_shape", "", "dropped", (), {}))
    return found


def set_batch_size(config: Dict[str, Any], batch_size: int) -> int:
    """Fix the batch dimension of every input layer of the config; return how many changed."""
    changed = 0
    for layer in _walk_layers(config):
        layer_config = layer.get("config", {})
        for key in ("batch_input_shape", "batch_shape"):
            shape = layer_config.get(key)
            if isinstance(shape, list) and shape:
                layer_config[key] = [batch_size] + list(shape[1:])
                changed += 1
    return changed


def _object_name(item: LambdaLayer) -> str:
    return "legacy_keras_{}_{}".format(item.key, item.layer)


def _namespace(tf: Any, custom_objects: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    import numpy

    namespace = {"K": tf.keras.backend, "backend": tf.keras.backend, "tf": tf,
                 "np": numpy, "numpy": numpy, "math": math}
    namespace.update(custom_objects or {})
    return namespace


def apply_lambda_layers(config: Dict[str, Any], items: Sequence[LambdaLayer],
                        namespace: Mapping[str, Any]) -> Dict[str, Any]:
    """Rewrite the config's Lambda entries to named functions; return the custom objects."""
    by_layer = {(item.layer, item.key): item for item in items}
    objects = {}
    for layer in _walk_layers(config):
        if layer.get("class_name") != "Lambda":
            continue
        layer_config = layer.setdefault("config", {})
        for key, type_key in _MARSHALLED_KEYS:
            item = by_layer.get((_layer_name(layer), key))
            if item is None:
                continue
            if item.origin == "dropped":
                layer_config[key] = None
                layer_config[type_key] = "raw"
                continue
            scope = dict(namespace)
            scope.update(item.closure)
            missing = [name for name in item.global_names
                       if name not in scope and not hasattr(builtins, name)]
            if missing:
                raise UntranslatableLambdaError(
                    "Lambda layer '{}': its {} `{}` uses the global name(s) {}, which are not "
                    "known here (known: {}). Pass them as custom_objects, or supply the source "
                    "with the names spelled out. {}".format(
                        item.layer, key, item.source, ", ".join(missing),
                        ", ".join(sorted(namespace)), _how_to_supply(
                            item.layer, layer_config.get("arguments") or {})),
                    layer=item.layer)
            where = "{}.{}".format(PARAMS_KEY, item.layer) if item.origin == "params" else \
                "Lambda layer {} {}".format(item.layer, key)
            objects[_object_name(item)] = compile_lambda(item.source, scope, where)
            layer_config[key] = _object_name(item)
            layer_config[type_key] = "function"
            layer_config.pop("module" if key == "function" else "output_shape_module", None)
    return objects


@contextlib.contextmanager
def _h5_suffixed(path: str) -> Iterator[str]:
    """Keras picks the weights format from the file name; give it an .h5 name if needed."""
    if path.lower().endswith((".h5", ".hdf5", ".keras")):
        yield path
        return
    directory = tempfile.mkdtemp(prefix="keras_loader-")
    try:
        link = os.path.join(directory, "model.h5")
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:
            shutil.copyfile(path, link)
        yield link
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def prepared_config(h5_path: str, lambda_sources: Optional[Mapping[str, str]] = None,
                    batch_size: Optional[int] = None,
                    custom_objects: Optional[Mapping[str, Any]] = None
                    ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(model config, custom objects) ready for `tf.keras.models.model_from_json`: the h5's
    config with every Lambda layer's function supplied and the batch size set (load_model)."""
    config = read_model_config(h5_path)
    items = lambda_layers(config, lambda_sources)
    if batch_size is not None:
        if set_batch_size(config, int(batch_size)) == 0:
            raise LegacyKerasError("{}: no input layer with a batch_input_shape to set the "
                                   "batch size on".format(h5_path))
    import tensorflow as tf

    objects = dict(custom_objects or {})
    objects.update(apply_lambda_layers(config, items, _namespace(tf, custom_objects)))
    return config, objects


def load_model(h5_path: str, lambda_sources: Optional[Mapping[str, str]] = None,
               batch_size: Optional[int] = None,
               custom_objects: Optional[Mapping[str, Any]] = None):
    """Build the Keras model saved in `h5_path` and load its weights, on Python 3.7+.

    Args:
        h5_path: a Keras 2.x .h5 file saved with model.save().
        lambda_sources: layer name -> Python lambda source, for Lambda layers whose bytecode the
            translator cannot handle (or to override a translation).
        batch_size: fix the input batch dimension (1 for the Edge TPU); None keeps it open.
        custom_objects: extra names for Keras (custom layers) and for the lambdas' globals.
            The lambdas' globals also hold K / backend (tf.keras.backend), tf, np and math.

    Raises LegacyKerasError (UntranslatableLambdaError for a Lambda layer) with a message that
    says what is wrong and what to do.
    """
    config, objects = prepared_config(h5_path, lambda_sources, batch_size, custom_objects)
    import tensorflow as tf

    model = tf.keras.models.model_from_json(json.dumps(config), custom_objects=objects)
    with _h5_suffixed(h5_path) as weights_path:
        model.load_weights(weights_path)
    return model


def model_lambda_layers(h5_path: str,
                        lambda_sources: Optional[Mapping[str, str]] = None) -> List[LambdaLayer]:
    """The Lambda layers of an h5 model and where their source comes from (no TensorFlow)."""
    return lambda_layers(read_model_config(h5_path), lambda_sources)
