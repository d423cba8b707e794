"""The predictor, the .tflite reader and the edgetpu-predict command, on tiny real models.

The models are built once per module with Keras and the TF 2.15 converter, each exercising one
rule of the compiler (see edgetpu_analyzer/rules.py for the evidence behind each rule).
"""
import json
import os
import random
import subprocess
import sys

import pytest

from edgetpu_analyzer import cli
from edgetpu_analyzer.parse import parse_compiler_stdout
from edgetpu_analyzer.predict import predict, predict_file
from edgetpu_analyzer.render import render_compiler_stdout
from edgetpu_analyzer.result import (
    KNOWN_STATUSES, STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, STATUS_OPERATION_NOT_SUPPORTED,
    STATUS_OTHERWISE_SUPPORTED, STATUS_TWO_D_OUTPUT, STATUS_UNSUPPORTED_DATA_TYPE,
    STATUS_UNSUPPORTED_RANK, STATUS_VERSION_NOT_SUPPORTED, CompileResult)
from edgetpu_analyzer.tflite_reader import ModelReadError, read_model, read_model_bytes
from tests.tiny_models import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024


def _build_all(directory):
    import tensorflow as tf
    layers = tf.keras.layers

    def branchy(batch=1):
        inp = layers.Input((16, 16, 3), batch_size=batch)
        a = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
        b = layers.Conv2D(8, 1)(inp)
        x = layers.MaxPooling2D()(layers.Add()([a, b]))
        x = layers.Concatenate()([x, layers.Conv2D(8, 3, padding="same")(x)])
        return tf.keras.Model(inp, layers.Dense(4)(layers.GlobalAveragePooling2D()(x)))

    def with_leaky_relu():
        inp = layers.Input((16, 16, 3), batch_size=1)
        x = layers.LeakyReLU()(layers.Conv2D(8, 3, padding="same")(inp))
        x = layers.Conv2D(8, 3, padding="same")(x)
        return tf.keras.Model(inp, layers.GlobalAveragePooling2D()(x))

    def with_rank5():
        inp = layers.Input((8, 8, 4), batch_size=1)
        x = layers.Reshape((2, 4, 8, 8))(layers.Conv2D(8, 1)(inp))
        x = layers.Lambda(lambda v: tf.nn.relu(v - 0.5))(x)   # an op working on the 5-D tensor
        x = layers.Reshape((8, 8, 8))(x)
        return tf.keras.Model(inp, layers.Conv2D(4, 1)(x))

    def grouped_conv():
        inp = layers.Input((8, 8, 4), batch_size=1)
        return tf.keras.Model(inp, layers.Conv2D(8, 3, padding="same", groups=2)(inp))

    def int8_exp():
        inp = layers.Input((8,), batch_size=1)
        return tf.keras.Model(inp, layers.Lambda(tf.exp)(layers.Dense(8)(inp)))

    def bilinear_upsampling():
        inp = layers.Input((8, 8, 4), batch_size=1)
        x = layers.UpSampling2D(interpolation="bilinear")(layers.Conv2D(4, 1)(inp))
        return tf.keras.Model(inp, x)

    def keras_reshape_with_dynamic_batch():
        inp = layers.Input((8, 8, 4))           # batch None: Reshape computes its shape
        x = layers.Reshape((16, 32))(layers.Conv2D(8, 1)(inp))
        return tf.keras.Model(inp, layers.Dense(4)(x))

    def dynamic_batch_only():
        inp = layers.Input((8, 8, 4))           # shape signature [-1, 8, 8, 4], static ops
        return tf.keras.Model(inp, layers.Conv2D(8, 1)(inp))

    def two_branches():
        inp = layers.Input((8, 8, 4), batch_size=1)
        trunk = layers.Conv2D(8, 1)(inp)
        cut = layers.Conv2D(8, 1)(layers.LeakyReLU()(trunk))
        return tf.keras.Model(inp, [cut, layers.Conv2D(8, 3, padding="same")(trunk)])

    def wide_rows():
        inp = layers.Input((40, 60, 84), batch_size=1)
        x = layers.Conv2D(84, 1)(inp)
        return tf.keras.Model(inp, layers.Reshape((2400, 84))(x))   # x * z = 201,600

    def big_transpose():
        inp = layers.Input((16, 64, 80), batch_size=1)
        return tf.keras.Model(inp, layers.Permute((3, 1, 2))(layers.Conv2D(80, 1)(inp)))

    def split_outermost():
        inp = layers.Input((8, 4), batch_size=1)

        def split_rows(x):
            rows = tf.split(tf.reshape(x, (8, 4, 1)), 8, axis=0)
            return tf.concat([tf.reshape(row, (1, 4)) for row in rows], axis=1)

        return tf.keras.Model(inp, layers.Lambda(split_rows)(layers.Dense(4)(inp)))

    def dense_stack(units):
        # The networks of Jorgitou98/EdgeTPU-QuantRL-Evaluation `FC_MACs_memory_test.py`.
        model = tf.keras.Sequential([layers.Dense(units, input_shape=(64,), activation="tanh")]
                                    + [layers.Dense(units, activation="tanh") for _ in range(3)]
                                    + [layers.Dense(10)])
        return model

    models = {
        "dense_500": convert(dense_stack(500), None),
        "dense_2020": convert(dense_stack(2020), None),
        "two_branches": convert(two_branches(), "int8"),
        "wide_rows": convert(wide_rows(), "int8"),
        "big_transpose": convert(big_transpose(), "int8"),
        "split_outermost": convert(split_outermost(), "int8"),
        "mapped_uint8": convert(branchy(), "uint8"),
        "mapped_int8": convert(branchy(), "int8"),
        "float_io": convert(branchy(), None),
        "float_model": convert(branchy(), quantize=False),
        "batch2": convert(branchy(batch=2), "int8"),
        "leaky_relu": convert(with_leaky_relu(), "int8"),
        "rank5": convert(with_rank5(), "int8"),
        "grouped_conv": convert(grouped_conv(), "int8"),
        "int8_exp": convert(int8_exp(), "int8"),
        "bilinear": convert(bilinear_upsampling(), "int8"),
        "dynamic_reshape": convert(keras_reshape_with_dynamic_batch(), "int8"),
        "dynamic_batch_only": convert(dynamic_batch_only(), "int8"),
    }
    paths = {}
    for name, data in models.items():
        paths[name] = os.path.join(str(directory), name + ".tflite")
        with open(paths[name], "wb") as handle:
            handle.write(data)
    return paths


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _build_all(tmp_path_factory.mktemp("tiny_models"))


def rows(result):
    return {(row.operator, row.status): row.count for row in result.operators}


def statuses(result):
    return [(op.operator, op.status) for op in result.execution_order]


def assert_consistent_statuses(result):
    """Invariants every successful prediction must satisfy, with or without -a."""
    assert result.predicted and result.succeeded
    assert all(row.status in KNOWN_STATUSES for row in result.operators)
    assert sum(row.count for row in result.operators) == result.total_operations
    assert len(result.execution_order) == result.total_operations
    assert result.operations_on_edgetpu + result.operations_on_cpu == result.total_operations


def assert_consistent(result):
    """... and without -a: at most one Edge TPU subgraph."""
    assert_consistent_statuses(result)
    assert result.edgetpu_subgraphs == (1 if result.operations_on_edgetpu else 0)


# --- rules --------------------------------------------------------------------------------------

def test_fully_mapped_uint8_model(tiny):
    result = predict_file(tiny["mapped_uint8"], "15.0", min_runtime_version=12)
    assert_consistent(result)
    assert result.compiler_version == "15.0.340273435" and result.min_runtime_version == 12
    assert result.operations_on_cpu == 0
    assert rows(result) == {
        ("QUANTIZE", STATUS_MAPPED): 2, ("CONV_2D", STATUS_MAPPED): 3,
        ("ADD", STATUS_MAPPED): 1, ("MAX_POOL_2D", STATUS_MAPPED): 1,
        ("CONCATENATION", STATUS_MAPPED): 1, ("MEAN", STATUS_MAPPED): 1,
        ("FULLY_CONNECTED", STATUS_MAPPED): 1}
    weights = sum(op.parameter_bytes for op in result.execution_order)
    assert weights > 0
    assert result.on_chip_memory_used_bytes >= weights and result.off_chip_memory_bytes == 0
    assert result.on_chip_memory_used_bytes % 256 == 0
    text = render_compiler_stdout(result)
    assert "Number of operations that will run on CPU" not in text
    assert "Started a compilation timeout timer" not in text      # 15.0 has no child process


def test_float_input_and_output_leave_quantize_and_dequantize_on_cpu(tiny):
    result = predict_file(tiny["float_io"])
    assert_consistent(result)
    order = statuses(result)
    assert order[0] == ("QUANTIZE", STATUS_OTHERWISE_SUPPORTED)
    assert order[-1] == ("DEQUANTIZE", STATUS_UNSUPPORTED_DATA_TYPE)
    assert all(status == STATUS_MAPPED for _, status in order[1:-1])
    assert (result.operations_on_edgetpu, result.operations_on_cpu) == (8, 2)
    text = render_compiler_stdout(result)
    assert "Number of operations that will run on Edge TPU: 8" in text
    assert "Model successfully compiled but not all operations are supported" in text


def test_unsupported_operator_in_the_middle_cuts_the_graph(tiny):
    result = predict_file(tiny["leaky_relu"])
    assert_consistent(result)
    assert statuses(result) == [
        ("CONV_2D", STATUS_MAPPED), ("LEAKY_RELU", STATUS_OPERATION_NOT_SUPPORTED),
        ("CONV_2D", STATUS_MORE_THAN_ONE_SUBGRAPH), ("MEAN", STATUS_MORE_THAN_ONE_SUBGRAPH)]
    # The same operator appears on two rows with different statuses.
    assert rows(result)[("CONV_2D", STATUS_MAPPED)] == 1
    assert rows(result)[("CONV_2D", STATUS_MORE_THAN_ONE_SUBGRAPH)] == 1
    assert "LEAKY_RELU" in result.execution_order[2].reason
    # Only the first convolution's weights are Edge TPU parameters, stored with the inner size
    # (3x3x3 = 27) padded to 64 and 16 bytes per output channel, in 256-byte units.
    weights = read_model(tiny["leaky_relu"]).tensors[read_model(
        tiny["leaky_relu"]).operators[0].inputs[1]]
    assert weights.shape == (8, 3, 3, 3)
    assert result.on_chip_memory_used_bytes == 768     # 8 * (64 + 16) = 640 -> 768
    assert result.off_chip_memory_bytes == 0


def test_with_dash_a_every_mappable_operator_maps(tiny):
    result = predict_file(tiny["leaky_relu"], multiple_subgraphs=True)
    assert_consistent_statuses(result)
    assert statuses(result) == [
        ("CONV_2D", STATUS_MAPPED), ("LEAKY_RELU", STATUS_OPERATION_NOT_SUPPORTED),
        ("CONV_2D", STATUS_MAPPED), ("MEAN", STATUS_MAPPED)]
    assert result.edgetpu_subgraphs == 2
    assert "--enable_multiple_subgraphs" in result.notes[0]


def test_a_branch_that_does_not_read_the_cpu_operator_stays_mapped(tiny):
    model = read_model(tiny["two_branches"])
    result = predict(model)
    assert_consistent(result)
    leaky = next(op for op in model.operators if op.name == "LEAKY_RELU")
    by_index = {op.index: op.status for op in result.execution_order}
    for op in model.operators:
        if op.name != "CONV_2D":
            continue
        reads_leaky = any(index in leaky.outputs for index in op.inputs)
        assert by_index[op.index] == (
            STATUS_MORE_THAN_ONE_SUBGRAPH if reads_leaky else STATUS_MAPPED), op
    assert rows(result)[("CONV_2D", STATUS_MAPPED)] == 2


def test_long_rows_and_big_transposes_stay_on_the_cpu(tiny):
    wide = predict_file(tiny["wide_rows"])
    assert ("RESHAPE", STATUS_OTHERWISE_SUPPORTED) in statuses(wide)
    assert ("CONV_2D", STATUS_MAPPED) in statuses(wide)
    assert "201600 elements" in next(op.reason for op in wide.execution_order
                                     if op.operator == "RESHAPE")
    transposed = predict_file(tiny["big_transpose"])
    assert ("TRANSPOSE", STATUS_OTHERWISE_SUPPORTED) in statuses(transposed)
    assert "81920 elements" in next(op.reason for op in transposed.execution_order
                                    if op.operator == "TRANSPOSE")


def test_split_along_the_outermost_dimension_gets_the_2d_status(tiny):
    model = read_model(tiny["split_outermost"])
    split = next(op for op in model.operators if op.name == "SPLIT")
    assert model.constant_ints(split.inputs[0]) == [0]
    result = predict(model, "16")
    assert ("SPLIT", STATUS_TWO_D_OUTPUT) in statuses(result)


def test_rank5_tensor_gets_the_rank_status_and_what_follows_leaves_the_subgraph(tiny):
    result = predict_file(tiny["rank5"])
    assert_consistent(result)
    order = statuses(result)
    assert order[0] == ("CONV_2D", STATUS_MAPPED)
    assert order[-1] == ("CONV_2D", STATUS_MORE_THAN_ONE_SUBGRAPH)
    middle = order[1:-1]
    assert middle and all(status == STATUS_UNSUPPORTED_RANK for _, status in middle)
    assert [name for name, _ in middle].count("RESHAPE") == 2


def test_batch_of_two_breaks_the_rank_rule(tiny):
    result = predict_file(tiny["batch2"])
    assert_consistent(result)
    assert result.operations_on_edgetpu == 0 and result.edgetpu_subgraphs == 0
    assert rows(result)[("CONV_2D", STATUS_UNSUPPORTED_RANK)] == 3


@pytest.mark.parametrize("compiler", ["15.0", "16.0"])
def test_int8_needs_runtime_12(tiny, compiler):
    result = predict_file(tiny["mapped_int8"], compiler, min_runtime_version=11)
    assert_consistent(result)
    assert {status for _, status in statuses(result)} == {STATUS_UNSUPPORTED_DATA_TYPE}
    assert result.edgetpu_subgraphs == 0
    assert (result.on_chip_memory_used_bytes, result.on_chip_memory_remaining_bytes,
            result.off_chip_memory_bytes) == (0, 0, 0)
    text = render_compiler_stdout(result)
    assert "Number of Edge TPU subgraphs: 0" in text
    assert "On-chip memory used for caching model parameters: 0.00B" in text
    assert predict_file(tiny["mapped_int8"], compiler, 12).operations_on_cpu == 0


def test_float_model_runs_entirely_on_cpu(tiny):
    result = predict_file(tiny["float_model"])
    assert_consistent(result)
    assert result.operations_on_edgetpu == 0
    assert all(status == STATUS_UNSUPPORTED_DATA_TYPE for _, status in statuses(result))


def test_grouped_convolution_is_refused_with_the_compilers_error(tiny):
    assert read_model(tiny["grouped_conv"]).operators[0].version == 6   # CONV_2D v6, TF 2.9+
    result = predict_file(tiny["grouped_conv"], "16.0")
    assert not result.succeeded and result.operators == []
    assert result.fatal_error.splitlines() == [
        "ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'. An older version of "
        "this builtin might be supported. Are you using an old TFLite binary with a newer "
        "model?", "", "ERROR: Registration failed.", "", "Invalid model: grouped_conv.tflite",
        "Model could not be parsed"]
    older = predict_file(tiny["grouped_conv"], "14.1")
    assert older.fatal_error.startswith(
        "ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'\n")
    # The rendered refusal parses back as a refusal.
    parsed = parse_compiler_stdout(render_compiler_stdout(result))
    assert parsed.predicted and not parsed.succeeded


def test_int8_exp_version_2_is_refused_by_compiler_16(tiny):
    result = predict_file(tiny["int8_exp"], "16.0")
    assert "builtin opcode 'EXP' version '2'" in result.fatal_error


def test_known_but_unmappable_version_gives_version_not_supported(tiny):
    resize = next(op for op in read_model(tiny["bilinear"]).operators
                  if op.name == "RESIZE_BILINEAR")
    assert resize.version == 3                      # half_pixel_centers
    on_15 = predict_file(tiny["bilinear"], "15.0")
    assert ("RESIZE_BILINEAR", STATUS_VERSION_NOT_SUPPORTED) in statuses(on_15)
    on_16 = predict_file(tiny["bilinear"], "16.0")
    assert ("RESIZE_BILINEAR", STATUS_MAPPED) in statuses(on_16)
    # Compiler 2.0's TFLite (~1.15) cannot even parse RESIZE_BILINEAR v3 (ge#45).
    assert "RESIZE_BILINEAR' version '3'" in predict_file(tiny["bilinear"], "2.0.267685300",
                                                         12).fatal_error


def test_computed_shapes_give_the_dynamic_tensor_error(tiny):
    result = predict_file(tiny["dynamic_reshape"], "16.0")
    assert result.fatal_error.splitlines()[0] == (
        "ERROR: Attempting to use a delegate that only supports static-sized tensors with a "
        "graph that has dynamic-sized tensors.")
    assert any("RESHAPE takes its shape from a computed tensor" in note for note in result.notes)
    text = render_compiler_stdout(result)
    assert text.splitlines()[2:4] == ["Started a compilation timeout timer of 180 seconds.",
                                      result.fatal_error.splitlines()[0]]
    assert text.endswith("Compilation failed!\n")
    # A -1 batch in the shape signature alone is not dynamic (TF2 Keras models carry it).
    assert read_model(tiny["dynamic_batch_only"]).tensors[0].shape_signature[0] == -1
    assert predict_file(tiny["dynamic_batch_only"]).operations_on_cpu == 0


def test_execution_order_for_a_real_table_keeps_only_statuses_it_implies(tiny):
    from edgetpu_analyzer.predict import execution_order_from_table
    # Every operator type has one status: the table implies each operator's status.
    predicted = predict_file(tiny["float_io"])
    order = execution_order_from_table(read_model(tiny["float_io"]), predicted.operators)
    assert statuses(CompileResult("x", False, execution_order=order)) == statuses(predicted)
    # CONV_2D appears under two statuses: which convolution got which is unknown.
    order = execution_order_from_table(read_model(tiny["leaky_relu"]),
                                       predict_file(tiny["leaky_relu"]).operators)
    assert [op.status for op in order] == [None, STATUS_OPERATION_NOT_SUPPORTED, None,
                                           STATUS_MORE_THAN_ONE_SUBGRAPH]


def test_memory_is_placed_an_operator_at_a_time():
    from edgetpu_analyzer.memory import estimate_memory
    capacity = 10 * MIB
    assert estimate_memory([], capacity) == (0, capacity, 0)
    assert estimate_memory([1024], capacity) == (1024, capacity - 1024, 0)
    # A block that no longer fits is streamed whole; a later smaller one is still cached.
    used, remaining, off_chip = estimate_memory([4 * MIB, 4 * MIB, 4 * MIB, MIB], capacity)
    assert (used, off_chip) == (9 * MIB, 4 * MIB) and remaining == MIB


@pytest.mark.parametrize("name, on_chip_mib, off_chip_mib", [
    # Compiler 16 on these networks (Jorgitou98/EdgeTPU-QuantRL-Evaluation
    # FC_MACs/results/minN100-maxN2640-stepN20-L4-I64.csv): all cached at N = 500; at N = 2020
    # two of the three 2020x2020 layers are streamed.
    ("dense_500", 0.794, 0.0), ("dense_2020", 4.19, 7.89),
])
def test_memory_of_dense_networks_within_5_percent(tiny, name, on_chip_mib, off_chip_mib):
    result = predict_file(tiny[name], "16")
    assert [status for operator, status in statuses(result)
            if operator == "FULLY_CONNECTED"] == [STATUS_MAPPED] * 5
    assert abs(result.on_chip_memory_used_bytes / (on_chip_mib * MIB) - 1) < 0.05
    if off_chip_mib:
        assert abs(result.off_chip_memory_bytes / (off_chip_mib * MIB) - 1) < 0.05
    else:
        assert result.off_chip_memory_bytes == 0


def test_compiler_2_0_prediction_uses_the_available_memory_header(tiny):
    result = predict_file(tiny["mapped_uint8"], "2.0.267685300")
    assert result.min_runtime_version == 12
    text = render_compiler_stdout(result)
    assert "On-chip memory available for caching model parameters: 6.91MiB" in text
    assert "remaining" not in text
    assert parse_compiler_stdout(text).on_chip_memory_available_bytes == \
        result.on_chip_memory_available_bytes


@pytest.mark.parametrize("requested, imitated, noted", [
    ("16.0.384591198", "16.0.384591198", False), ("16", "16.0.384591198", True),
    ("1.0", "1.0.249710469", True), ("1.0.249710469", "1.0.249710469", False),
    ("2.1", "2.1.302470888", True), ("2.0", "2.0.291256449", True),
    ("15.0.340273435", "15.0.340273435", False), ("17", "16.0.384591198", True),
    ("3.0", "2.1.302470888", True), ("0.9", "1.0.249710469", True),
])
def test_any_well_formed_compiler_version_imitates_a_known_release(tiny, requested, imitated,
                                                                    noted):
    result = predict_file(tiny["mapped_uint8"], requested)
    assert result.compiler_version == imitated
    assert result.requested_compiler_version == requested
    version_notes = [note for note in result.notes
                     if note.startswith("edgetpu_compiler {} ".format(requested))]
    assert len(version_notes) == (1 if noted else 0)
    assert all(imitated in note for note in version_notes)
    assert render_compiler_stdout(result).splitlines()[1] == \
        "Edge TPU Compiler version " + imitated


def test_bad_compiler_or_runtime_choice_is_refused(tiny):
    for malformed in ("sixteen", "16.x", "", "1..0", "-1"):
        with pytest.raises(ValueError, match="malformed Edge TPU compiler version"):
            predict_file(tiny["mapped_int8"], malformed)
    with pytest.raises(ValueError, match="outside what compiler 15.0.340273435 targets"):
        predict_file(tiny["mapped_int8"], "15.0", min_runtime_version=14)


def test_prediction_structure_round_trips_through_json(tiny):
    result = predict_file(tiny["leaky_relu"])
    again = CompileResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert any("estimate" in note for note in result.notes)


# --- FaceNet ----------------------------------------------------------------------------------

def test_facenet_maps_every_operator(facenet_tflite):
    result = predict_file(facenet_tflite, "15.0", min_runtime_version=12)
    assert_consistent(result)
    assert result.operations_on_cpu == 0
    assert {status for _, status in statuses(result)} == {STATUS_MAPPED}
    assert rows(result)[("CONV_2D", STATUS_MAPPED)] == 132
    # Seed 000 (compiler 15.0, same network): on-chip 7.04MiB, off-chip 15.06MiB; the goal
    # of issue 12 is 5 %.
    assert abs(result.on_chip_memory_used_bytes / (7.04 * MIB) - 1) < 0.05
    assert abs(result.off_chip_memory_bytes / (15.06 * MIB) - 1) < 0.05
    assert predict_file(facenet_tflite, "16.0", 12).operations_on_cpu == 0


def test_cli_prints_facenet_as_a_prediction(facenet_tflite):
    command = [sys.executable, "-m", "edgetpu_analyzer.cli", facenet_tflite,
               "--compiler-version", "15.0", "--min-runtime-version", "12"]
    completed = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert completed.returncode == 0, completed.stderr
    text = completed.stdout.decode()
    assert text.startswith("# PREDICTION by edgetpu_analyzer")
    assert "\nCONV_2D                        132        Mapped to Edge TPU\n" in text


# --- reader robustness --------------------------------------------------------------------------

def test_truncated_files_fail_with_a_clear_error(tiny):
    with open(tiny["float_io"], "rb") as handle:
        data = handle.read()
    for cut in (8, 12, 64, len(data) // 3, len(data) // 2, len(data) - 16, len(data) - 1):
        with pytest.raises(ModelReadError, match="damaged|truncated") as error:
            read_model_bytes(data[:cut], "cut.tflite")
        assert "\n" not in str(error.value)


def test_random_bytes_and_empty_files_fail_with_a_clear_error(tmp_path):
    rng = random.Random(7)
    noise = bytes(rng.randrange(256) for _ in range(4096))
    with pytest.raises(ModelReadError, match="not a TFLite model"):
        read_model_bytes(noise)
    with pytest.raises(ModelReadError, match="damaged|truncated"):
        read_model_bytes(noise[:4] + b"TFL3" + noise[8:])
    with pytest.raises(ModelReadError, match="empty"):
        read_model_bytes(b"")
    with pytest.raises(ModelReadError, match="no such file"):
        read_model(str(tmp_path / "missing.tflite"))
    with pytest.raises(ModelReadError, match="directory"):
        read_model(str(tmp_path))


def test_corrupted_bytes_never_escape_as_other_exceptions(tiny):
    with open(tiny["float_io"], "rb") as handle:
        data = handle.read()
    rng = random.Random(3)
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(8, len(damaged))] = rng.randrange(256)
        try:
            predict(read_model_bytes(bytes(damaged), "damaged.tflite"))
        except ModelReadError:
            pass


# --- command line -------------------------------------------------------------------------------

def _run_cli(args):
    return subprocess.run([sys.executable, "-m", "edgetpu_analyzer.cli"] + args, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("make_input", ["missing", "empty", "random", "truncated"])
def test_cli_bad_input_gives_one_line_and_exit_status_2(tiny, tmp_path, make_input):
    path = tmp_path / "bad.tflite"
    if make_input == "empty":
        path.write_bytes(b"")
    elif make_input == "random":
        path.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(1000)))
    elif make_input == "truncated":
        with open(tiny["mapped_int8"], "rb") as handle:
            path.write_bytes(handle.read()[:900])
    completed = _run_cli([str(path)])
    stderr = completed.stderr.decode()
    assert completed.returncode == 2
    assert completed.stdout == b""
    assert stderr.startswith("edgetpu-predict: error: ") and stderr.count("\n") == 1
    assert "Traceback" not in stderr


def test_cli_json_and_exit_status(tiny, capsys):
    assert cli.main([tiny["leaky_relu"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["predicted"] is True and data["operations_on_cpu"] == 3
    assert [item["status"] for item in data["execution_order"]][1] == \
        STATUS_OPERATION_NOT_SUPPORTED
    assert cli.main([tiny["grouped_conv"]]) == 1            # predicted refusal
    out = capsys.readouterr().out
    assert out.startswith("# PREDICTION") and "Model could not be parsed" in out
    assert cli.main([tiny["mapped_int8"], "--compiler-version", "nine"]) == 2
    err = capsys.readouterr().err
    assert "malformed Edge TPU compiler version 'nine'" in err and err.count("\n") == 1
    # A well-formed version no release carries is imitated, and the output says so.
    assert cli.main([tiny["mapped_int8"], "--compiler-version", "17", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["requested_compiler_version"], data["compiler_version"]) == (
        "17", "16.0.384591198")
    assert cli.main([tiny["mapped_int8"], "--compiler-version", "17"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# PREDICTION")
    assert "# note: edgetpu_compiler 17 is not a release whose rules are known; imitating " \
        "16.0.384591198" in out


def test_cli_text_has_the_compilers_layout(tiny, capsys):
    assert cli.main([tiny["float_io"], "--compiler-version", "16.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# PREDICTION") and "NOT edgetpu_compiler output" in lines[0]
    assert lines[1:4] == ["Edge TPU Compiler version 16.0.384591198",
                          "Started a compilation timeout timer of 180 seconds.", ""]
    header = lines.index("Operator                       Count      Status")
    assert lines[header + 1] == ""
    assert lines[header + 2] == (
        "QUANTIZE                       1          Operation is otherwise supported, but not "
        "mapped due to some unspecified limitation")
    assert "Compilation succeeded!" in lines
    assert any(line.startswith("# note: Memory lines are estimates") for line in lines)


def test_help_uses_defaults_formatter():
    parser = cli.build_parser()
    assert "(default: 16.0.384591198)" in parser.format_help()
