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
