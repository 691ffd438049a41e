"""FactorTopy features computed batch by batch as dask tasks on a distributed cluster equal the serial ones."""

from __future__ import annotations

import numpy as np
import pytest

from neuroalign_utils.factortopy import features

distributed = pytest.importorskip("distributed")


def test_features_on_a_cluster_equal_serial(tmp_path):
    spec = features.BackboneSpec(name="vit", size="small")
    images = np.random.default_rng(1).random((40, 32, 32, 3)).astype(np.float32)  # 3 batches of 16
    serial = features.cached_features(spec, images, data_dir=tmp_path / "serial", dtype="float32")
    on_cluster = features.cached_features(
        spec, images, data_dir=tmp_path / "cluster", dtype="float32", scheduler="local:2"
    )
    assert not on_cluster["hit"]
    np.testing.assert_array_equal(on_cluster["local"], serial["local"])
    np.testing.assert_array_equal(on_cluster["global"], serial["global"])
    # the raw batches, before the cache's per-layer scaling: the same batches as iter_features gives
    scheduled = list(features.scheduled_features(spec, images, scheduler="synchronous"))
    direct = list(features.iter_features(features.build_backbone(spec), "vit", images))
    assert [len(local) for local, _ in scheduled] == [16, 16, 8]
    for (a_local, a_global), (b_local, b_global) in zip(scheduled, direct, strict=True):
        np.testing.assert_array_equal(a_local, b_local)
        np.testing.assert_array_equal(a_global, b_global)


def test_bad_scheduler_is_refused_before_any_work(tmp_path):
    images = np.zeros((2, 32, 32, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="'scheduler' must be one of"):
        features.cached_features(features.BackboneSpec(), images, data_dir=tmp_path, scheduler="cluster")
    assert not (tmp_path / "cache").exists()
