"""Hyper-parameters of a fine-tuning run, validated up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["TrainingArgs"]


@dataclass
class TrainingArgs:
    """Hyper-parameters for fine-tuning the base encoder.

    Args:
        epochs (`float`, defaults to `4`): passes over the training set (the best dev epoch is kept).
        batch_size (`int`, defaults to `32`): training batch size.
        learning_rate (`float`, defaults to `5e-5`): peak AdamW learning rate.
        warmup_ratio (`float`, defaults to `0.06`): share of steps with linear warm-up.
        weight_decay (`float`, defaults to `0.01`): AdamW weight decay.
        max_length (`int`, defaults to `128`): tokens kept per input.
        dev_fraction (`float`, defaults to `0.1`): share of TRAIN carved out as dev when no dev file is given.
        max_train_examples (`int | None`, defaults to `None`): cap on training rows (``--quick``).
        max_dev_examples (`int | None`, defaults to `None`): cap on dev rows (``--quick``).
        max_test_examples (`int | None`, defaults to `None`): cap on test rows scored after training (``--quick``).
        seed (`int`, defaults to `42`): seed for data order, dev split and weights.
        int8_min_agreement (`float`, defaults to `0.97`): an int8 graph is served only when it gives the
            fp32 graph's answer this often on dev; otherwise the model is served in fp32.
        require_int8 (`bool`, defaults to `False`): stop with an error instead of serving fp32.
        baseline (`bool`, defaults to `False`): classification only: also fit TF-IDF + SVM on the
            training rows and score it on the test rows (minutes with many labels).
        average_checkpoints (`int`, defaults to `0`): average the weights of this many best dev
            epochs at the end, kept when the average scores at least the best epoch on dev (0: off).
        context_words (`int`, defaults to `0`): entities only: tokens of the neighbouring sentences
            (same document) around each CoNLL sentence when training and scoring, half each side.
    """

    epochs: float = 4
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_length: int = 128
    dev_fraction: float = 0.1
    max_train_examples: int | None = None
    max_dev_examples: int | None = None
    max_test_examples: int | None = None
    seed: int = 42
    int8_min_agreement: float = 0.97
    require_int8: bool = False
    baseline: bool = False
    context_words: int = 0
    average_checkpoints: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not 8 <= self.max_length <= 512:
            raise ValueError(f"max_length must be in [8, 512], got {self.max_length!r}")
        if not 0 < self.dev_fraction < 0.5:
            raise ValueError(f"dev_fraction must be in (0, 0.5), got {self.dev_fraction!r}")
        if self.average_checkpoints < 0:
            raise ValueError(f"average_checkpoints must be >= 0, got {self.average_checkpoints!r}")
        if self.context_words < 0:
            raise ValueError(f"context_words must be >= 0, got {self.context_words!r}")
        if not 0 < self.int8_min_agreement <= 1:
            raise ValueError(f"int8_min_agreement must be in (0, 1], got {self.int8_min_agreement!r}")

    @classmethod
    def quick(cls, **overrides) -> "TrainingArgs":
        """A small run (about a minute on 2 cores) for tests and the demo.

        Its int8 guard is looser (0.9): an undertrained model scores many items near a
        decision boundary, where int8 rounding flips more of them (a quick helpdesk model
        measured 0.967); the full-training guard stays at 0.97.
        """
        values = dict(epochs=1, max_train_examples=1200, max_dev_examples=300, max_test_examples=500,
                      max_length=64, learning_rate=2e-4, int8_min_agreement=0.9)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingArgs":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
