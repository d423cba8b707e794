"""The Edge TPU compiler's rules as data: compiler releases, supported operations, op versions.

Every entry cites its evidence with the tags of the facts sheet beside the repository,
shared/reference/edgetpu-compiler-facts.md:
[DOC] Coral documentation, [DOC-partial] coral.ai text read in part, [MAINT] a Coral maintainer,
[OBS] real compiler output, [TF] TensorFlow source, [INF] inference; `ge#N` is
github.com/google-coral/edgetpu/issues/N, `MI` the coral.ai "TensorFlow models on the Edge TPU"
page, seeds 000/001 the project's seed documents. The rule *logic* lives in
operator_checks.py (per operator), predict.py (whole model, partitioning) and memory.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from edgetpu_analyzer.result import STATUS_OTHERWISE_SUPPORTED, STATUS_TWO_D_OUTPUT


@dataclass(frozen=True)
class CompilerProfile:
    """What differs between compiler releases."""

    version: str
    default_runtime: int            # newest Edge TPU runtime it targets (its -m default)
    bundled_tflite: Tuple[int, int]  # TF release its built-in TFLite interpreter matches
    memory_available_line: bool     # prints "On-chip memory available" instead of "remaining"
    child_process: bool             # compiles in a child process with --timeout_sec (16+)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


COMPILER_PROFILES = (
    # May 2019, runtime 10, uint8 only: ET-CHANGES "Edge TPU compiler 1.0" [DOC]. Bundled TFLite
    # about TF 1.13 (the release of that spring) and the 2.0-style "available" memory header
    # are assumptions [INF]; its operation logs map plain uint8 MobileNet/CNN ops (TensorDSE
    # and asr_edgetpu_demo logs) [OBS].
    CompilerProfile("1.0.249710469", 10, (1, 13), True, False),
    # Runtime 12, full-integer models from this release on: ET-CHANGES [DOC]. TFLite ~1.15: it
    # refused RELU v2 (TF 2.1, ge#34) and RESIZE_BILINEAR v3 (TF 2.2, ge#45) [OBS]. Header with
    # "available": seed 001 [OBS].
    CompilerProfile("2.0.267685300", 12, (1, 15), True, False),
    # Runtime 13: ET-CHANGES [DOC]; "available" header: ge#74 [OBS]; TFLite level unknown [INF].
    CompilerProfile("2.0.291256449", 13, (2, 0), True, False),
    # Refused RESIZE_NEAREST_NEIGHBOR v3 and TRANSPOSE_CONV v3 (TF 2.3): ge#114, ge#147, ge#358
    # [OBS]; "sweet spot is tensorflow2.2" ge#147 [MAINT]; used/remaining header ge#60 [OBS].
    CompilerProfile("2.1.302470888", 13, (2, 2), False, False),
    # Refused CONV_2D v5 (TF 2.4): ge#210, tf#43288; parsed RESIZE_* v3 (TF 2.2/2.3): tf#42024
    # [OBS]; runtime 13: ET-DEB [DOC].
    CompilerProfile("14.1.317412892", 13, (2, 3), False, False),
    # Refused DEPTH_TO_SPACE v2 (ge#386), RSQRT v2 (ge#384), REVERSE_V2 v3 (ge#340), all TF
    # 2.5; parsed RESIZE_* v3: ge#420 [OBS]. Seed 000.
    CompilerProfile("15.0.340273435", 13, (2, 4), False, False),
    # Runtime 14: coral_usb_ros#78, acap3-examples#147 [OBS]; "tflite runtime 2.5.0": ge#464
    # [MAINT]; refused CONV_2D v6 (ge#631), QUANTIZE v3 (TF 2.7, ge#879), TRANSPOSE_CONV v4
    # (ge#845), EXP v2 (libedgetpu#71), builtin code 151 (ge#862) [OBS]; timer lines [OBS].
    # Parsed ADD v4 (int64 ADD, TF 2.6): R-e-d-a-X/EdgeTPU-and-NCS random-forest
    # `tt/float32/model_edgetpu.log` lists 19 ADD [OBS]; its July 2021 build postdates the TF
    # 2.6 branch, which fits [INF]. So its TFLite knows TF 2.6 versions, not 2.7 ones.
    CompilerProfile("16.0.384591198", 14, (2, 6), False, True),
)

DEFAULT_COMPILER_VERSION = "16.0.384591198"
LOWEST_RUNTIME_VERSION = 10  # compiler 1.0 targeted runtime 10 (facts sheet section 1) [DOC]

_WELL_FORMED_VERSION = re.compile(r"^\d+(\.\d+)*$")


def _numbers(version: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def resolve_compiler(version: str) -> Tuple[CompilerProfile, Optional[str]]:
    """The known release to imitate for a compiler version string, and a note when it is not
    that exact release.

    "16", "16.0" and "16.0.384591198" name 16.0.384591198; a prefix shared by several releases
    ("2.0", "2") names the newest of them. Any other well-formed version imitates the newest
    known release not newer than it (a later build keeps the rules its predecessor is known
    to have), or the oldest known release when it predates them all. ValueError for a
    malformed string (not dot-separated numbers).
    """
    wanted = str(version).strip()
    if not _WELL_FORMED_VERSION.match(wanted):
        raise ValueError(
            "malformed Edge TPU compiler version {!r}: expected numbers separated by dots, "
            "such as 16, 15.0 or 16.0.384591198".format(version))
    numbers = _numbers(wanted)
    matches = [profile for profile in COMPILER_PROFILES
               if _numbers(profile.version)[:len(numbers)] == numbers]
    if matches and matches[-1].version == wanted:
        return matches[-1], None
    if matches:
        return matches[-1], "edgetpu_compiler {} taken as {}, the newest known release it " \
            "names".format(wanted, matches[-1].version)
    older = [profile for profile in COMPILER_PROFILES
             if _numbers(profile.version)[:len(numbers)] <= numbers]
    profile = older[-1] if older else COMPILER_PROFILES[0]
    how = "the newest known release not newer than it" if older else \
        "the oldest known release; it predates every release whose rules are known"
    return profile, "edgetpu_compiler {} is not a release whose rules are known; imitating " \
        "{} ({})".format(wanted, profile.version, how)


def compiler_profile(version: str) -> CompilerProfile:
    """The profile resolve_compiler() imitates for `version` (ValueError when malformed)."""
    return resolve_compiler(version)[0]


# Operations the Edge TPU can run, with the lowest runtime (-m) that maps them. Source: MI
# table 1 [DOC-partial]; "All" runtimes = 10. C = confirmed by the 2019 verbatim copy of the
# table, CH = ET-CHANGES, O = seen mapped in real logs, R = recalled only (facts sheet section 2).
SUPPORTED_OPERATIONS = {
    "ADD": 10,                      # C, O
    "AVERAGE_POOL_2D": 10,          # C
    "CONCATENATION": 10,            # C, O
    "CONV_2D": 10,                  # C, O
    "DEPTHWISE_CONV_2D": 10,        # C, O
    "EXPAND_DIMS": 13,              # CH (runtime 13 adds ExpandDims)
    "FULLY_CONNECTED": 10,          # C, O
    "L2_NORMALIZATION": 10,         # C, O (jiri-kula log)
    "LOGISTIC": 10,                 # C, O
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 14,  # R (official LSTM tutorial exists)
    "MAXIMUM": 10,                  # C; ge#165 [MAINT]
    "MINIMUM": 10,                  # C
    "MAX_POOL_2D": 10,              # C, O
    "MEAN": 10,                     # C, O
    "MUL": 10,                      # C, O
    "PACK": 13,                     # CH
    "PAD": 10,                      # C, O
    "PRELU": 13,                    # ge#460, ge#597 (user quotes of MI)
    # CH says runtime 13 added Quantize, but an 8-bit -> 8-bit QUANTIZE maps with -m 12 (seed
    # 000: 33 mapped, compiler 15) and with compiler 2.0's runtime 12 (seed 001) [OBS].
    "QUANTIZE": 12,
    "REDUCE_MAX": 14,               # R
    "REDUCE_MIN": 14,               # R
    "RELU": 10,                     # C
    "RELU6": 10,                    # C
    "RELU_N1_TO_1": 10,             # C
    "RESHAPE": 10,                  # C, O
    "RESIZE_BILINEAR": 10,          # C, ge#206
    "RESIZE_NEAREST_NEIGHBOR": 10,  # C, ge#206, O (v16 YOLO logs)
    "RSQRT": 14,                    # R
    "SLICE": 10,                    # C
    "SOFTMAX": 10,                  # C, O
    "SPACE_TO_DEPTH": 10,           # C
    "SPLIT": 10,                    # C
    "SQUEEZE": 10,                  # C
    "STRIDED_SLICE": 10,            # C, O
    "SUB": 10,                      # C, O
    "SUM": 13,                      # CH, O (jiri-kula log)
    "SQUARED_DIFFERENCE": 14,       # R; ge#461 (in a v16 model)
    "TANH": 10,                     # C, O
    # R; v15 (runtime 13) says "Operation not supported" (ge#317, ge#342), v16 maps it (O).
    "TRANSPOSE": 14,
    "TRANSPOSE_CONV": 13,           # CH; ge#684 [MAINT], ge#686 (O)
}

# Custom operators the bundled TFLite interpreter resolves (BuiltinOpResolver in TF's
# kernels/register.cc [TF]); any other custom op aborts compilation (jiri-kula README [OBS]).
KNOWN_CUSTOM_OPERATORS = ("TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram")

# The TF release that introduced each operator version, version 1 first ("-": never released).
# From tensorflow/lite/tools/versioning/runtime_version.cc (TF ~2.11 copy) [TF]; versions
# after that copy from op_version.cc notes in facts sheet 4.2 [TF], marked where added.
# A version missing here is newer than this table, so no compiler's TFLite knows it [INF].
OP_VERSION_TF_RELEASE = {
    "ABS": "1.13 2.4 2.5 2.6",
    "ADD": "1.5 1.14 2.4 2.6",
    "ADD_N": "1.14",
    "ARG_MAX": "1.9 1.14 2.9",
    "ARG_MIN": "1.9 1.14 2.9",
    "ASSIGN_VARIABLE": "2.6",
    "ATAN2": "2.10",
    "AVERAGE_POOL_2D": "1.5 1.14 2.3",
    "BATCH_MATMUL": "2.3 2.3 2.4 2.5",
    "BATCH_TO_SPACE_ND": "1.6 1.14 2.3",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "1.14 1.14 1.14",
    "BIDIRECTIONAL_SEQUENCE_RNN": "1.14 1.14 2.3",
    "BROADCAST_ARGS": "2.6",
    "BROADCAST_TO": "- 2.5 2.5",
    "BUCKETIZE": "2.8",
    "CALL_ONCE": "2.5",
    "CAST": "1.5 2.7 2.8 2.9",
    "CEIL": "1.14",
    "COMPLEX_ABS": "2.5",
    "CONCATENATION": "1.5 1.14 2.3",
    "CONV_2D": "1.5 1.14 1.14 2.3 2.4 2.9 2.11",      # v7 (int4 weights): op_version.cc
    "CONV_3D": "2.5",
    "CONV_3D_TRANSPOSE": "2.6",
    "COS": "1.14",
    "CUMSUM": "2.4",
    "DENSIFY": "2.2",
    "DEPTH_TO_SPACE": "2.1 2.5",
    "DEPTHWISE_CONV_2D": "1.5 1.12 1.14 2.2 2.3 2.3 2.11",  # v7 (int4): op_version.cc
    "DEQUANTIZE": "1.13 1.14 1.15 2.2 2.7",
    "DIV": "1.6 2.3",
    "DYNAMIC_UPDATE_SLICE": "2.9",
    "ELU": "1.14",
    "EMBEDDING_LOOKUP": "1.13 1.14 1.14",
    "EMBEDDING_LOOKUP_SPARSE": "1.5",
    "EQUAL": "1.14 1.14 2.3",
    # v2 (int8) is missing from runtime_version.cc; compiler 16 refuses it (libedgetpu#71,
    # tflm#2633, TF 2.16 model [OBS]); TF 2.15 writes it for int8 EXP (checked here) [INF].
    "EXP": "1.7 2.13",
    "EXPAND_DIMS": "1.10",
    "FAKE_QUANT": "1.5 1.10",
    "FILL": "1.13 2.3 2.5",
    "FLOOR": "1.9",
    "FLOOR_DIV": "1.14 1.14",
    "FLOOR_MOD": "1.13",
    "FULLY_CONNECTED": "1.5 1.10 1.14 1.14 2.0 2.1 2.3 2.3 2.3 2.11",  # v10: op_version.cc
    "GATHER": "1.6 1.14 1.15 2.4 2.5",
    "GATHER_ND": "1.14 2.3 2.5",
    "GELU": "2.9 2.9",
    "GREATER": "1.14 1.14",
    "GREATER_EQUAL": "1.14 1.14",
    "HARD_SWISH": "1.15",
    "HASHTABLE": "2.5",
    "HASHTABLE_FIND": "2.5",
    "HASHTABLE_IMPORT": "2.5",
    "HASHTABLE_LOOKUP": "1.5",
    "HASHTABLE_SIZE": "2.5",
    "IF": "1.15",
    "IMAG": "2.5",
    "L2_NORMALIZATION": "1.5 1.14",
    "L2_POOL_2D": "1.5",
    "LEAKY_RELU": "1.13 2.3",
    "LESS": "1.14 1.14",
    "LESS_EQUAL": "1.14 1.14",
    "LOCAL_RESPONSE_NORMALIZATION": "1.5",
    "LOG": "1.14",
    "LOG_SOFTMAX": "1.14 1.14",
    "LOGICAL_AND": "1.11",
    "LOGICAL_NOT": "1.11",
    "LOGICAL_OR": "1.11",
    "LOGISTIC": "1.14 1.14 2.3",
    "LSH_PROJECTION": "1.5",
    "LSTM": "1.7 1.10 1.14 2.3",
    "MATRIX_DIAG": "1.14",
    "MATRIX_SET_DIAG": "1.14",
    "MAX_POOL_2D": "1.5 1.14 2.3",
    "MAXIMUM": "1.14 1.14 2.3 2.3",
    "MEAN": "1.6 1.14 2.4",
    "MINIMUM": "1.14 1.14 2.3 2.3",
    "MIRROR_PAD": "1.13 2.3",
    "MUL": "1.5 1.14 1.15 2.3 2.6",
    "MULTINOMIAL": "2.8",
    "NEG": "1.9",
    "NON_MAX_SUPPRESSION_V4": "2.1",
    "NON_MAX_SUPPRESSION_V5": "2.1",
    "NOT_EQUAL": "1.14 1.14 2.3",
    "ONE_HOT": "1.11",
    "PACK": "1.11 1.14 2.3",
    "PAD": "1.5 1.14 2.4 2.6",
    "PADV2": "1.9 1.14 2.4 2.6",
    "POW": "1.10",
    "PRELU": "1.8",
    "QUANTIZE": "1.14 1.15 2.7",
    "RANDOM_STANDARD_NORMAL": "2.8",
    "RANDOM_UNIFORM": "2.8",
    "RANGE": "1.13",
    "RANK": "1.14",
    "READ_VARIABLE": "2.6",
    "REAL": "2.5",
    "REDUCE_ALL": "2.6",
    "REDUCE_ANY": "1.11",
    "REDUCE_MAX": "1.11 1.14 2.5",
    "REDUCE_MIN": "1.11 1.14 2.5",
    "REDUCE_PROD": "1.11 2.6",
    "RELU": "1.5 2.1 2.5",
    "RELU6": "1.5 1.14 2.5",
    "RELU_0_TO_1": "2.10",
    "RELU_N1_TO_1": "1.5",
    "RESHAPE": "1.5",
    "RESIZE_BILINEAR": "1.7 1.14 2.2 2.5",
    "RESIZE_NEAREST_NEIGHBOR": "1.13 1.14 2.3 2.4",
    "REVERSE_SEQUENCE": "1.14",
    "REVERSE_V2": "1.14 2.2 2.5",
    "RFFT2D": "2.5",
    "RNN": "1.5 1.14 2.3",
    "ROUND": "1.14",
    "RSQRT": "1.10 2.5",
    "SCATTER_ND": "2.1",
    "SEGMENT_SUM": "2.2",
    "SELECT": "1.14 1.14",
    "SELECT_V2": "2.2",
    "SHAPE": "1.10",
    "SIN": "1.9",
    "SKIP_GRAM": "1.5",
    "SLICE": "1.14 1.14 1.14 2.4 2.5",
    "SOFTMAX": "1.5 1.14 2.3",
    "SPACE_TO_BATCH_ND": "1.6 1.14 2.3",
    "SPACE_TO_DEPTH": "1.5 1.14",
    "SPARSE_TO_DENSE": "1.9 1.14 1.15",
    "SPLIT": "1.5 1.14 1.14 2.3",
    "SPLIT_V": "1.13 2.3",
    "SQRT": "1.10",
    "SQUARE": "1.12",
    "SQUARED_DIFFERENCE": "1.13 2.5",
    "SQUEEZE": "1.6 2.5",
    "STRIDED_SLICE": "1.6 1.14 2.1 2.2 2.5 2.6",
    "SUB": "1.6 1.14 2.3 2.4 2.4",
    "SUM": "1.10 1.15",
    "SVDF": "1.5 1.14 2.2 2.3",
    "TANH": "1.14 1.14 2.3",
    "TILE": "1.10 2.2 2.8",
    "TOPK_V2": "1.7 1.14",
    "TRANSPOSE": "1.6 1.14 1.15 2.3 2.4 2.12",         # v6: op_version.cc
    "TRANSPOSE_CONV": "1.9 2.2 2.3 2.13",              # v4 (fused activation): op_version.cc
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "1.13 1.14 2.3",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "1.14 1.14 2.3",
    "UNIQUE": "1.14",
    "UNPACK": "1.11 1.14 2.2 2.3",
    "UNSORTED_SEGMENT_MAX": "2.10",
    "UNSORTED_SEGMENT_MIN": "2.11",
    "UNSORTED_SEGMENT_PROD": "2.10",
    "UNSORTED_SEGMENT_SUM": "2.10",
    "VAR_HANDLE": "2.6",
    "WHERE": "1.14 2.8",
    "ZEROS_LIKE": "1.12",
}
# Operators of the original TFLite schema (builtin codes below 127) that runtime_version.cc
# never lists have only version 1, which every compiler's TFLite knows [INF].
LEGACY_BUILTIN_CODE_LIMIT = 127


def _release(text: str) -> Optional[Tuple[int, int]]:
    """(major, minor) of a release in OP_VERSION_TF_RELEASE; None for "-" (never released)."""
    if text == "-":
        return None
    return _major_minor(text)


def _major_minor(text: str) -> Tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def op_version_release(operator: str, version: int, builtin_code: int) -> Optional[
        Tuple[int, int]]:
    """The TF release that introduced `operator` version `version`; None when it is newer than
    OP_VERSION_TF_RELEASE (treat as unknown to every compiler)."""
    releases = OP_VERSION_TF_RELEASE.get(operator)
    if releases is None:
        if builtin_code < LEGACY_BUILTIN_CODE_LIMIT and version == 1:
            return (1, 0)
        return None
    listed = releases.split()
    if not 1 <= version <= len(listed):
        return None
    return _release(listed[version - 1])


def max_known_builtin_code(profile: CompilerProfile, codes_by_name: Dict[str, int]) -> int:
    """The highest builtin code the compiler's TFLite schema has: the newest operator whose
    version 1 (or first released version) predates its bundled TF [INF from ge#862]."""
    highest = LEGACY_BUILTIN_CODE_LIMIT - 1
    for name, releases in OP_VERSION_TF_RELEASE.items():
        first = _major_minor(next(text for text in releases.split() if text != "-"))
        code = codes_by_name.get(name)
        if code is not None and first <= profile.bundled_tflite:
            highest = max(highest, code)
    return highest


# Versions the compiler's TFLite parses but its Edge TPU mapper refuses, per compiler major
# version: operator -> highest mapped version. RESIZE_* v3 (half_pixel_centers / align_corners)
# -> "Operation version not supported" on 14.1 (tf#42024, ge#206, rajansaini691 log) and 15.0
# (ge#420, ge#396, ge#187) [OBS]; on 2.1 assumed alike [INF]. Compiler 16 maps half-pixel
# resizes in YOLO exports, op versions unseen: left unrestricted (unconfirmed) [OBS/INF].
MAPPER_VERSION_LIMITS = {
    2: {"RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2},
    14: {"RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2},
    15: {"RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2},
}

# int8 tensors need runtime 12 or later: ET-CHANGES [DOC]; -m 10/11 gave "unsupported data
# type" for int8 ops on 14.1 (ge#222) and 15.0 (ge#358) [OBS].
INT8_MIN_RUNTIME = 12

# The only element types the Edge TPU computes with (MI requirement 1) [DOC].
EDGETPU_TENSOR_TYPES = ("UINT8", "INT8")
# Constant side inputs that may be 32/64-bit integers: biases, shapes, axes, paddings [OBS:
# every mapped CONV_2D/FULLY_CONNECTED carries an int32 bias; MEAN/PAD/RESHAPE take int32].
CONSTANT_PARAMETER_TYPES = ("UINT8", "INT8", "INT32", "INT64")

# Operators whose second input is a weight ("filter") tensor that must be constant:
# FULLY_CONNECTED with a runtime operand -> ge#25 (compiler 2.0) [OBS]; MI requirement 3 [DOC].
# A FULLY_CONNECTED whose *first* operand is the constant and whose weights are computed is
# mapped: 95 compiler-16 logs of R-e-d-a-X/EdgeTPU-and-NCS (random-forest GEMM models, 1 to
# 257 such operators each, outputs up to [128, 256]) [OBS]; assumed for older compilers [INF].
WEIGHTED_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
# ... up to a size: those logs map constant first operands of 30,720 and 56,576 bytes
# ([1920, 16], [7072, 8]) but leave a [7168, 16] one (114,688 bytes) "otherwise supported"
# (`model_32_16_16_1_edgetpu.log`) [OBS]; the limit is somewhere in between, 64 KiB assumed.
FC_CONSTANT_INPUT_MAX_BYTES = 64 * 1024

# Operand positions that are parameters, not activations: the rank and data-type rules do not
# apply to them (a conv filter is 4-D by nature). In a float16 model the filters come from
# DEQUANTIZE ops, yet the 60 CONV_2D report the data type, not the rank (MaxwellHogan
# coral_wifi_webserver `yolov5n-fp16_edgetpu.log`, compiler 16) [OBS].
PARAMETER_OPERANDS = {
    "CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (0, 1, 3),
}
# Index operands may be int32/int64 even when computed: GATHER with int8 data and computed
# int64 indices reports "Operation not supported" (38 of them), only the int64-data GATHERs
# report the data type (R-e-d-a-X `random_forest/tt/float32/model_edgetpu.log`, compiler
# 16) [OBS]; GATHER_ND alike [INF].
INDEX_OPERANDS = {"GATHER": (1,), "GATHER_ND": (1,)}

# A SPLIT along the outermost dimension (axis 0 of a 3-D [n, a, b] tensor) reports the
# "2D output" status on compiler 16: every SPLIT in 51 R-e-d-a-X/EdgeTPU-and-NCS logs [OBS].
# The message dates from compiler 2.0 (ge#27); assumed the same for the releases between [INF].
SPLIT_OUTERMOST_STATUS = STATUS_TWO_D_OUTPUT

# Activation size limits behind "otherwise supported" in detection heads, compiler 16. In two
# YOLOv8n exports with their logs (MRezqalla/GoalBuddy 320x320 `Models/TPU/...` and
# MaxwellHogan/coral_wifi_webserver 640x640 `yolov8n_full_integer_quant_edgetpu.log`) [OBS]:
# (a) an operator whose data tensor holds more than about 200,000 elements in its two innermost
#     dimensions (x * z; the anchors axis lies there in the head) is left on the CPU: mapped up
#     to 176,400 ([1, 84, 2100] CONCATENATION, [1, 80, 2100] LOGISTIC/QUANTIZE), refused from
#     230,400 ([1, 144, 1600] RESHAPE, [1, 144, 2100] CONCATENATION/STRIDED_SLICE, [1, 80,
#     8400] LOGISTIC/QUANTIZE), while [1, 80, 80, 144] concatenations (x * z = 11,520) map;
#     the limit lies in (176,400, 230,400], 200,000 assumed [INF];
# (b) a TRANSPOSE of more than about 65,536 elements: [1, 20, 20, 144] (57,600) maps, [1, 4, 16,
#     2100] (134,400) and larger do not; limit in (57,600, 134,400], 2^16 assumed [INF].
# Older compilers: unknown, the same limits assumed [INF].
ACTIVATION_ROW_MAX_ELEMENTS = 200000
TRANSPOSE_MAX_ELEMENTS = 65536

# SOFTMAX: "only 1-D input, at most 16,000 elements" (MI, C) [DOC-partial].
SOFTMAX_MAX_ELEMENTS = 16000


def two_d_output_status(profile: CompilerProfile) -> str:
    """Status for a FULLY_CONNECTED/SOFTMAX whose output is not effectively 1-D: compiler 2.0
    printed the dedicated message (ge#27, Nov 2019) [OBS]; later ones are assumed to use the
    generic limitation status [INF]."""
    return STATUS_TWO_D_OUTPUT if profile.major == 2 and profile.version.startswith(
        "2.0.") else STATUS_OTHERWISE_SUPPORTED


def maps_batched_rows(profile: CompilerProfile) -> bool:
    """Whether a SOFTMAX over several rows ([1, 4, 8400, 16]), or a FULLY_CONNECTED with a
    constant first operand and a 2-D output, maps. MI says their output must be 1-D
    [DOC-partial] and compiler 2.0 refused a 2-D FULLY_CONNECTED (ge#27) [OBS], but compiler 16
    maps [2, 256] ... [128, 256] outputs of constant-first FULLY_CONNECTED (R-e-d-a-X/
    EdgeTPU-and-NCS logs above), and the YOLOv8 heads' [1, 4, 2100, 16] and [1, 4, 8400, 16]
    SOFTMAX are mappable (they report "More than one subgraph", GoalBuddy and
    coral_wifi_webserver logs) [OBS]. A FULLY_CONNECTED over a computed batch keeps the
    documented rule (no log seen); releases before 16 follow the documentation [INF]."""
    return profile.major >= 16


# Parameter memory. The compiler reports used + remaining on-chip space that varies per model:
# 6.06, 6.12, 6.16, 6.87, 6.89, 6.99, 7.04, 7.50, 8.02 MiB (facts 7.2) and "available" 6.91
# (seed 001), 7.69 MiB (ge#74) [OBS]. The median of these 11, 6.91 MiB, is the assumed
# capacity; the spread (about +-1 MiB) is the error to expect [INF].
ASSUMED_ON_CHIP_CAPACITY_BYTES = int(round(6.91 * 1024 * 1024))
OBSERVED_ON_CHIP_CAPACITY_RANGE_MIB = (6.06, 8.02)
# On-chip amounts are multiples of 0.25 KiB in every published output (facts 7.2) [INF].
ON_CHIP_GRANULARITY_BYTES = 256
# How the compiler stores a weight matrix: Jorgitou98/EdgeTPU-QuantRL-Evaluation ran compiler
# 16 on 135 dense networks (64 -> N -> N -> N -> N -> 10, N = 100..3000, `FC_MACs_memory_test.py`
# and its `FC_MACs/results/*-L4-I64.csv` on-chip/off-chip columns) [OBS]. Output channels x
# (input size rounded up to 64 + 16 bytes) reproduces the 104 all-on-chip totals with a mean
# error of 0.4% (largest 1.7%); raw int8 weights + int32 biases undershoot by up to 26% [INF].
# When the network outgrows the SRAM, whole layers move off-chip (N = 1700: 5.81 MiB cached,
# 2.80 MiB, one hidden layer, streamed), hence the placement by operator in memory.py [OBS].
WEIGHT_INNER_ALIGNMENT = 64
WEIGHT_BYTES_PER_CHANNEL = 16
