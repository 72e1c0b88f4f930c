"""Evaluation: the confusion matrix agrees with accuracy, per-class scores with scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import classification_report

from mnist_core.config import TrialConfig
from mnist_core.evaluation import evaluate, evaluate_probabilities
from mnist_core.training import train


@pytest.fixture(scope="module")
def evaluation(digits):
    fit = train(TrialConfig(epochs=10), digits)
    return evaluate(fit.model, digits.x_test, digits.y_test), fit.model


def test_trace_over_total_is_accuracy(evaluation, digits):
    result, _ = evaluation
    assert result.confusion.shape == (10, 10)
    assert result.confusion.sum() == len(digits.y_test)
    assert np.trace(result.confusion) / result.confusion.sum() == pytest.approx(result.accuracy)


def test_loss_and_accuracy_match_keras_evaluate(evaluation, digits):
    result, model = evaluation
    keras_loss, keras_accuracy = model.evaluate(digits.x_test, digits.y_test, verbose=0)
    assert result.loss == pytest.approx(keras_loss, abs=1e-4)
    assert result.accuracy == pytest.approx(keras_accuracy, abs=1e-6)


def test_per_class_scores_match_scikit_learn(evaluation, digits):
    result, model = evaluation
    predicted = model.predict(digits.x_test, verbose=0).argmax(axis=1)
    report = classification_report(digits.y_test, predicted, output_dict=True, zero_division=0)
    for label in range(10):
        assert result.recall[label] == pytest.approx(report[str(label)]["recall"])
        assert result.precision[label] == pytest.approx(report[str(label)]["precision"])
        assert result.support[label] == report[str(label)]["support"]


def test_confusion_keeps_ten_labels_when_classes_are_missing():
    probabilities = np.eye(10, dtype=np.float32)[[1, 1, 2]]
    result = evaluate_probabilities(probabilities, np.array([1, 2, 2]))
    assert result.confusion.shape == (10, 10)
    assert result.confusion[2, 1] == 1 and result.confusion[1, 1] == 1
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.support.tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_a_pack_members_weights_score_as_its_keras_model(digits, activation):
    """What a pack's members are scored with (weights, numpy counts) equals ``evaluate`` of
    the Keras model holding those weights (scikit-learn's per-class scores)."""
    from mnist_core.config import ModelConfig
    from mnist_core.evaluation import evaluate_weights

    config = TrialConfig(model=ModelConfig(hidden_units=(12, 8), activation=activation),
                         epochs=2)
    model = train(config, digits).model
    packed = evaluate_weights(model.get_weights(), activation, digits.pixel_max,
                              digits.x_test, digits.y_test)
    keras = evaluate(model, digits.x_test, digits.y_test)
    np.testing.assert_array_equal(packed.confusion, keras.confusion)
    for name in ("precision", "recall", "f1", "support"):
        np.testing.assert_allclose(getattr(packed, name), getattr(keras, name), atol=1e-12)
    assert (packed.loss, packed.accuracy) == pytest.approx((keras.loss, keras.accuracy))


def test_scores_without_a_prediction_for_a_label_are_zero_as_scikit_learns():
    from mnist_core.evaluation import evaluate_counts

    labels = np.array([0, 0, 1, 2, 2, 3])
    probabilities = np.eye(10)[[0, 1, 1, 2, 0, 0]] * 0.9 + 0.01
    counted = evaluate_counts(probabilities, labels)
    reference = evaluate_probabilities(probabilities, labels)
    for name in ("precision", "recall", "f1", "support"):
        np.testing.assert_allclose(getattr(counted, name), getattr(reference, name))
    np.testing.assert_array_equal(counted.confusion, reference.confusion)
