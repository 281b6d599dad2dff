import pytest
from pydantic import ValidationError

from backprop.spec import TrainSpec

NET = {"layers": [2, 4, 1]}


def test_defaults_are_the_seeds_setting():
    spec = TrainSpec(network=NET)
    assert spec.loss == "mse"
    assert spec.optimizer.name == "sgd"
    assert spec.network.activation == "sigmoid"
    assert spec.network.output_activation == "sigmoid"
    assert spec.network.init == "xavier"
    assert spec.lr_schedule.name == "constant"
    assert spec.dtype == "float64"
    assert spec.batch_size is None
    assert spec.early_stopping is None


def test_optimizer_without_name_is_sgd_and_keeps_its_coefficients():
    spec = TrainSpec.model_validate({"network": NET, "optimizer": {"learning_rate": 0.5}})
    assert (spec.optimizer.name, spec.optimizer.learning_rate) == ("sgd", 0.5)
    adam = TrainSpec.model_validate({"network": NET, "optimizer": {"name": "adam"}}).optimizer
    assert (adam.beta1, adam.beta2, adam.eps, adam.learning_rate) == (0.9, 0.999, 1e-8, 0.001)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"loss": "cross_entropy"}, "needs network.output_activation 'softmax'"),
        (
            {
                "loss": "cross_entropy",
                "network": {"layers": [2, 1], "output_activation": "softmax"},
            },
            "at least 2 output units",
        ),
        (
            {"network": {"layers": [2, 3], "output_activation": "softmax"}},
            "needs loss 'cross_entropy'",
        ),
        (
            {
                "loss": "binary_cross_entropy",
                "network": {"layers": [2, 1], "output_activation": "identity"},
            },
            "needs network.output_activation 'sigmoid'",
        ),
        ({"network": {"layers": [2]}}, "at least 2"),
        ({"network": {"layers": [2, 0, 1]}}, "greater than or equal to 1"),
        ({"optimizer": {"learning_rate": -0.1}}, "greater than 0"),
        ({"optimizer": {"name": "sgd", "momentum": 0.9}}, "Extra inputs are not permitted"),
        ({"optimizer": {"name": "lbfgs"}}, "'sgd', 'momentum', 'nesterov'"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"validation_split": 1.0}, "less than 1"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"network": {"layers": [2, 1], "activation": "swish"}}, "'sigmoid', 'tanh', 'relu'"),
        ({"l2": float("nan")}, "finite number"),
    ],
)
def test_meaningless_specs_say_what_to_change(changes, says):
    body = {"network": NET} | changes
    with pytest.raises(ValidationError) as err:
        TrainSpec.model_validate(body)
    assert says in str(err.value)


def test_valid_classification_pairs():
    ce = TrainSpec.model_validate(
        {"network": {"layers": [4, 8, 3], "output_activation": "softmax"}, "loss": "cross_entropy"}
    )
    bce = TrainSpec.model_validate({"network": NET, "loss": "binary_cross_entropy"})
    assert ce.is_classification
    assert bce.is_classification
    assert not TrainSpec(network=NET).is_classification


def test_spec_round_trips_through_json():
    spec = TrainSpec.model_validate(
        {
            "network": NET,
            "optimizer": {"name": "momentum"},
            "lr_schedule": {"name": "step"},
            "early_stopping": {"patience": 3},
        }
    )
    assert TrainSpec.model_validate_json(spec.model_dump_json()) == spec
