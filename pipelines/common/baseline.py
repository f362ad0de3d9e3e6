"""The classic baseline every classification number is printed beside: TF-IDF + linear SVM.

Character 2-5-grams (within word boundaries) and word 1-2-grams over the raw text, no
extra fields, as the data sets' published references are computed. Fitted on the same
training rows as the model and scored on the same test rows, in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pipelines.common.data import Example
from pipelines.common.metrics import classification_metrics

__all__ = ["tfidf_svm_baseline"]


def tfidf_svm_baseline(train: Sequence[Example], test: Sequence[Example], labels: Sequence[str]) -> dict:
    """Metrics of TF-IDF + LinearSVC trained on ``train`` (text only) and scored on ``test``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    model = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        ),
        LinearSVC(C=0.5),
    )
    model.fit([ex.text for ex in train], [ex.label for ex in train])
    predicted = [str(p) for p in model.predict([ex.text for ex in test])]
    metrics = classification_metrics([ex.label for ex in test], predicted, labels)
    metrics.pop("confusion_matrix")
    metrics["model"] = "tfidf(char_wb 2-5 + word 1-2) + LinearSVC, text only"
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics
