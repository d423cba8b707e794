"""The fidelity stage's own code: its figure, its outputs and its reading of the reference run
(the metrics are tests/test_embedding_metrics.py's; the evaluation of a small quantized model,
embed_int8 included, is in tests/test_conversion_stages.py, FaceNet's in tests/test_pipeline.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from facenet_edgetpu.lib import interpreter, records
from facenet_edgetpu.lib.plots import embeddings_png
from facenet_edgetpu.stages import fidelity as F


def test_embeddings_png_is_reproducible_and_carries_no_metadata():
    random = np.random.RandomState(1)
    points = {v: random.normal(size=(6, 2)) for v in F.VARIANTS}
    labels = ["ann", "bob", "cy", "ann", "bob", "cy"]
    png = embeddings_png(points, labels, F.TITLES, [0.4, 0.2])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in png and b"matplotlib" not in png
    assert embeddings_png(points, labels, F.TITLES, [0.4, 0.2]) == png
    moved = dict(points, float=points["float"] + 1.0)
    assert embeddings_png(moved, labels, F.TITLES, [0.4, 0.2]) != png




def a_fidelity_record():
    metrics = records.VariantMetrics(identity_accuracy=1.0, eer=0.0, eer_threshold=0.5, auc=1.0,
                                     embedding_norm_mean=1.0)
    return records.Fidelity(
        counts=records.FidelityCounts(val_faces=4, gallery_faces=4, people=2, pairs=6,
                                      genuine_pairs=2),
        input_quantization=records.InputQuantization(scale=0.1, zero_point=128,
                                                     clipped_fraction=0.0,
                                                     seed_wrapped_fraction=0.0,
                                                     seed_wrapped_faces=0),
        variants={variant: metrics for variant in F.VARIANTS},
        vs_float={variant: records.Agreement(cosine_mean=1.0, cosine_min=1.0, l2_mean=0.0,
                                             l2_max=0.0) for variant in F.VARIANTS[1:]})


def test_write_outputs_replaces_the_plots_folder_as_a_whole(tmp_path):
    fidelity, plots = str(tmp_path / "fidelity.json"), str(tmp_path / "fidelity")
    os.makedirs(os.path.join(plots, "roc"))
    (tmp_path / "fidelity" / "roc" / "stale.csv").write_text("from an older run")
    F.write_outputs(a_fidelity_record(), {"int8": "fpr,tpr\n", "float": "x\n"}, b"png",
                    fidelity, plots)
    assert records.Fidelity.load(fidelity) == a_fidelity_record()
    assert sorted(os.listdir(os.path.join(plots, "roc"))) == ["float.csv", "int8.csv"]
    with open(os.path.join(plots, "embeddings.png"), "rb") as handle:
        assert handle.read() == b"png"
    assert sorted(os.listdir(str(tmp_path))) == ["fidelity", "fidelity.json"]


def test_log_figures_name_every_variant():
    lines = F.log_figures(a_fidelity_record())
    assert [line.split()[0] for line in lines] == list(F.VARIANTS) + list(F.VARIANTS[1:])


def test_float_embeddings_must_have_one_row_per_face(tmp_path):
    np.save(str(tmp_path / "embeddings.npy"), np.zeros((3, 8), np.float32))
    assert F.float_embeddings(str(tmp_path), 3).shape == (3, 8)
    with pytest.raises(F.FidelityError, match="3 rows for 5 preprocessed faces: rerun "
                                              "float_reference"):
        F.float_embeddings(str(tmp_path), 5)
    with pytest.raises(F.FidelityError, match="cannot read .*rerun float_reference"):
        F.float_embeddings(str(tmp_path / "absent"), 3)


def test_tensorflow_api_paths_exist():
    import tensorflow as tf

    for path in interpreter.TF2_API:
        target = tf
        for name in path.split("."):
            target = getattr(target, name)
        assert target is not None, path
