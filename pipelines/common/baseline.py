"""The classic baseline every classification number is printed beside: TF-IDF + linear SVM.

Character 2-5-grams (within word boundaries) and word 1-2-grams over the raw text, no
extra fields, as the data sets' published references are computed. Fitted on the same
training rows as the model and scored on the same test rows, in the same run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pipelines.common.data import Example
from pipelines.common.metrics import classification_metrics

__all__ = ["BASELINE_NAME", "tfidf_svm_baseline", "tfidf_svm_predictions"]

logger = logging.getLogger(__name__)
BASELINE_NAME = "tfidf(char_wb 2-5 + word 1-2) + LinearSVC, text only"


def tfidf_svm_predictions(train: Sequence[Example], test: Sequence[Example]) -> list[str]:
    """Labels that TF-IDF + LinearSVC, trained on ``train`` (text only), gives ``test``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    labels = {ex.label for ex in train}
    # One-vs-rest: one SVM per label, so the fit grows with the label count (124 labels over
    # 90,000 rows: about 18 minutes on 2 cores); say so before the silence.
    logger.info("fitting the TF-IDF + LinearSVC baseline: %d rows, %d labels (minutes with many labels)",
                len(train), len(labels))
    model = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        ),
        LinearSVC(C=0.5),
    )
    model.fit([ex.text for ex in train], [ex.label for ex in train])
    predicted = [str(p) for p in model.predict([ex.text for ex in test])]
    logger.info('baseline fitted and scored seconds="%.1f"', time.perf_counter() - started)
    return predicted


def tfidf_svm_baseline(train: Sequence[Example], test: Sequence[Example], labels: Sequence[str]) -> dict:
    """Metrics of TF-IDF + LinearSVC trained on ``train`` (text only) and scored on ``test``."""
    started = time.perf_counter()
    predicted = tfidf_svm_predictions(train, test)
    metrics = classification_metrics([ex.label for ex in test], predicted, labels)
    metrics.pop("confusion_matrix")
    metrics["model"] = BASELINE_NAME
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics
