"""SharedBottom specifics: its heads with and without an action label, config errors, its registry row. (Training
steps, config and SavedModel round trips of every zoo model: models/zoo_test.py.)"""

import pytest

from models.config import ConfigError
from models.registry import build_model, describe_models
from models.testing import tiny_batch, tiny_dims

CONFIG = {"embedding_dim": 4, "bottom_units": [16], "tower_units": [8]}


def _model(with_action=True):
    return build_model("shared_bottom", tiny_dims().to_dict(), CONFIG, with_action=with_action)


def test_builds_from_config_and_outputs_heads():
    model = _model()
    assert set(model(tiny_batch(8))) == {"ctr", "cvr", "ctcvr", "xcvr", "ctavr"}  # ranges: zoo_test


def test_without_action_label_omits_ctavr():
    out = _model(with_action=False)(tiny_batch(4, with_action=False))
    assert "ctavr" not in out


def test_bad_config_rejected():
    with pytest.raises(ConfigError, match="unknown key 'bottom'"):
        build_model("shared_bottom", tiny_dims().to_dict(), {"bottom": [3]})
    with pytest.raises(ConfigError, match="bottom_units must be a list"):
        build_model("shared_bottom", tiny_dims().to_dict(), {"bottom_units": 3})
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope", tiny_dims().to_dict())


def test_registry_lists_reference():
    rows = dict((n, r) for n, _, r in describe_models())
    assert "Caruana" in rows["shared_bottom"]
