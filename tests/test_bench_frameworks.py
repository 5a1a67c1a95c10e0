"""tools/bench_frameworks.py compares like with like: its Keras networks are the pipeline's
(the notebook MLP, and its augmented CNN) with the parameter counts of
tools/bench_torch.py's PyTorch versions (109,386 and 871,210, batch norm's running statistics
included; PyTorch itself is not installed for the tests)."""

from __future__ import annotations

import pytest
from helpers.pipeline import PARAMS

from digits.model import Network, build_model
from tools import bench_frameworks as frameworks
from tools import profile_train as profile


@pytest.mark.parametrize(("network", "parameters"), [("mlp", 109_386), ("cnn-augmented", 871_210)])
def test_the_keras_side_is_the_pipelines_network(network: str, parameters: int) -> None:
    overrides, epochs, _ = frameworks.NETWORKS[network]
    params = frameworks.train_params(PARAMS, overrides)

    assert params.epochs == epochs
    assert build_model(Network.from_params(params)).count_params() == parameters


def test_the_cnn_is_the_augmented_cnn() -> None:
    params = frameworks.train_params(PARAMS, frameworks.NETWORKS["cnn-augmented"][0])
    assert params.architecture == "cnn"
    assert params.augmentation.enabled
    assert (params.conv_filters, params.convs_per_block, params.hidden_units) == (
        [32, 64],
        2,
        [256],
    )


@pytest.mark.parametrize("network", list(profile.VARIANTS))
def test_every_profile_variant_is_a_valid_change_of_the_benchmarked_network(network: str) -> None:
    base = frameworks.train_params(PARAMS, frameworks.NETWORKS[network][0])
    for name, variant in profile.VARIANTS[network].items():
        params = frameworks.train_params(
            PARAMS, [*frameworks.NETWORKS[network][0], *variant.overrides]
        )
        changed = {
            key for key, value in params.model_dump().items() if value != base.model_dump()[key]
        }
        process_changed = variant._replace(overrides=()) != profile.Variant()
        # one thing at a time: a params change, or a process setting, never both
        assert len(changed) + process_changed <= 1, name
        assert name == "pipeline" or changed or process_changed, name
