import pytest

from pipeline.scoring.metrics import accuracy, confusion_matrix, macro_f1, per_class_f1


def test_confusion_and_scores_by_hand():
    truth = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    cm = confusion_matrix(truth, preds, 3)
    assert cm == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert accuracy(cm) == pytest.approx(4 / 6)
    # class 0: p=2/2 r=2/3 -> 0.8; class 1: p=1/2 r=1/2 -> 0.5; class 2: p=1/2 r=1 -> 2/3
    assert per_class_f1(cm) == pytest.approx([0.8, 0.5, 2 / 3])
    assert macro_f1(cm) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_macro_f1_ignores_absent_classes_and_handles_empty():
    assert macro_f1(confusion_matrix([0, 1], [0, 1], 3)) == 1.0
    assert accuracy([[0, 0], [0, 0]]) == 0.0
