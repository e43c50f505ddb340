from pathlib import Path

import pytest

from edgeml import config
from edgeml.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_tutorial_network():
    cfg = config.load(None)
    assert cfg["model"]["hidden"] == [64, 32, 32]
    assert cfg["hls"]["Precision"] == "ap_fixed<16,6>"
    assert cfg["hls"]["Part"] == "xcu250-figd2104-2L-e"


def test_partial_file_merges_over_defaults(tmp_path):
    cfg = config.load(write(tmp_path, "train:\n  epochs: 3\n"))
    assert cfg["train"]["epochs"] == 3
    assert cfg["train"]["batch_size"] == 1024


@pytest.mark.parametrize("text, fragment", [
    ("train:\n  epoch: 3\n", "unknown key 'train.epoch' (allowed: epochs,"),
    ("trian:\n  epochs: 3\n", "unknown key 'trian'"),
    ("train:\n  epochs: ten\n", "train.epochs = 'ten' must be an integer"),
    ("train:\n  epochs: 0\n", "train.epochs = 0 is below the minimum 1"),
    ("data:\n  test_fraction: 0.9\n", "data.test_fraction = 0.9 is above the maximum 0.5"),
    ("model:\n  activation: gelu\n", "model.activation = 'gelu' is not allowed (allowed: relu, tanh, sigmoid)"),
    ("model:\n  hidden: [64, x]\n", "model.hidden[1] = 'x' must be an integer"),
    ("model:\n  batch_norm: 1\n", "model.batch_norm = 1 must be true or false"),
    ("hls:\n  Precision: ap_fixed<16>\n", "hls.Precision = 'ap_fixed<16>' is not a valid precision"),
    ("hls:\n  IOType: io_serial\n", "allowed: io_parallel, io_stream"),
    ("hls:\n  LayerName:\n    fc1:\n      Precision:\n        wieght: ap_fixed<8,3>\n",
     "unknown key 'hls.LayerName.fc1.Precision.wieght'"),
    ("hls:\n  LayerName:\n    fc1:\n      ReuseFactor: -2\n", "hls.LayerName.fc1.ReuseFactor = -2 is below"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_validation_names_key_value_and_allowed(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text))
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        config.load(write(tmp_path, "train: [\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")


def test_per_layer_precision_dict_is_accepted(tmp_path):
    cfg = config.load(write(tmp_path, "hls:\n  LayerName:\n    fc1:\n      Precision:\n        weight: ap_fixed<8,3>\n"
                                      "        result: ap_fixed<12,6,AP_RND,AP_SAT>\n      ReuseFactor: 4\n"))
    assert cfg["hls"]["LayerName"]["fc1"]["Precision"]["result"] == "ap_fixed<12,6,AP_RND,AP_SAT>"
    assert config.parse_precision("ap_fixed<12,6,AP_RND,AP_SAT>") == (True, 12, 6)
    assert config.parse_precision("ap_uint<3>") == (False, 3, 3)


def test_shipped_configs_validate():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        config.load(path)


def test_docs_config_md_is_in_sync():
    assert (ROOT / "docs" / "config.md").read_text().strip() == config.render_docs().strip(), \
        "docs/config.md is stale: run `python -m edgeml.config > docs/config.md`"
