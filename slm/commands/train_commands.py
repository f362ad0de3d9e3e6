"""``slm train`` and ``slm evaluate``: fine-tune a task's model, and score a model folder on a labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from shared.console import clean_errors, validated
from shared.errors import ConfigError
from shared.task_kinds import TASKS

__all__ = ["evaluate", "train"]

_column_options = [
    click.option("--text-col", default=None, help="Column holding the text."),
    click.option("--label-col", default=None, help="Column holding the label."),
    click.option("--field-cols", default=None, help="Comma-separated extra columns passed as fields."),
]


def _with_columns(func):
    for option in reversed(_column_options):
        func = option(func)
    return func



@click.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option("--data", "train_files", type=click.Path(path_type=Path), multiple=True,
              help="Training file (CSV/JSONL, CoNLL for entities); repeat to train on several as one.")
@click.option("--feedback", "feedback_files", type=click.Path(path_type=Path), multiple=True,
              help="Labelled file of `slm feedback export`, trained on whole (never dev, never capped) in place of the "
                   "--data rows with the same input; repeatable (the last verdict on an input wins).")
@click.option("--eval", "eval_file", type=click.Path(path_type=Path), default=None, help="Test file scored after training.")
@click.option("--dev", "dev_file", type=click.Path(path_type=Path), default=None, help="Dev file (default: carved from --data).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help="Model folder (default models/<task>).")
@click.option("--quick", is_flag=True, help="Small subset, one epoch: about a minute, for tests and the demo.")
@click.option("--epochs", type=float, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--learning-rate", type=float, default=None)
@click.option("--max-length", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--dev-fraction", type=float, default=None, help="Share of --data carved out as dev (default 0.1).")
@click.option("--context-words", type=int, default=None,
              help="entities: words of the neighbouring sentences seen around each sentence.")
@click.option("--average-checkpoints", type=int, default=None,
              help="Average the weights of this many best dev epochs (kept when the average is as good on dev).")
@click.option("--int8-min-agreement", type=float, default=None,
              help="Least share of dev items on which an int8 graph must give the fp32 answer (default 0.97).")
@click.option("--require-int8", is_flag=True,
              help="Stop with an error when no int8 graph keeps the fp32 model's answers (default: serve fp32).")
@click.option("--baseline", is_flag=True, help="classification: also fit and score TF-IDF + SVM (minutes).")
@_with_columns
@clean_errors
def train(task, train_files, feedback_files, eval_file, dev_file, out_dir, quick, epochs, batch_size, learning_rate, max_length, seed,
          dev_fraction, context_words, average_checkpoints, int8_min_agreement, require_int8, baseline, text_col,
          label_col, field_cols) -> None:
    """Fine-tune TASK's model, export ONNX, quantize to int8, evaluate and save the model folder.

    Classification tasks read CSV or JSONL (--text-col, --label-col, --field-cols); entities
    reads CoNLL (token first, tag last, IO or IOB2, any tag set). The served graph is static
    int8 where it keeps the fp32 model's answers on dev, else the best int8 that does, else fp32.
    """
    from pipelines.common.args import TrainingArgs
    from pipelines.common.data import ColumnChoice
    from pipelines.kinds import recipe_class
    from pipelines.recipe import train_model
    from pipelines.tasks import dataset_for
    from shared.settings import default_model_dir
    from shared.task_kinds import kind_of_task

    dataset = dataset_for(task)
    overrides = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                       max_length=max_length, seed=seed, dev_fraction=dev_fraction,
                                       context_words=context_words, average_checkpoints=average_checkpoints,
                                       int8_min_agreement=int8_min_agreement,
                                       require_int8=require_int8 or None, baseline=baseline or None).items()
                 if v is not None}
    # Command-line values win; then --quick's small settings, or the data set's own defaults.
    if quick:
        args = validated(TrainingArgs.quick, **{**dataset.quick_defaults, **overrides})
    else:
        args = validated(TrainingArgs, **{**dataset.training_defaults, **overrides})
    # Without --data, --feedback adds to the task's own training file, read with its columns.
    custom_data = bool(train_files)
    recipe = recipe_class(kind_of_task(task)).for_training(ColumnChoice(text_col, label_col, field_cols),
                                                           baseline=baseline, dataset=None if custom_data else dataset)
    out_dir = out_dir or default_model_dir(task)
    eval_file = eval_file if (eval_file or custom_data) else dataset.test_file
    trained = train_model(recipe, task, list(train_files) or [dataset.train_file], out_dir, args, eval_file=eval_file,
                          dev_file=dev_file, feedback_files=list(feedback_files))
    info, metrics = trained.info, trained.metrics
    click.echo(f"saved {info.model_id} to {out_dir}")
    if feedback_files:
        # A verdict replaces the training items with its input, so the old label is not learnt beside it.
        click.echo(f"feedback replaced {trained.feedback.replaced} {recipe.unit} of the training data")
        if trained.feedback.superseded:
            click.echo(f"feedback: {trained.feedback.superseded} {recipe.unit} gave way to a later verdict "
                       "on the same input")
    for split, scores in metrics.splits():
        click.echo(f"{split}: {info.precision} {scores.served.summary()} | fp32 {scores.fp32.brief()}")
    if metrics.test and metrics.test.served.top3_accuracy is not None:
        click.echo(f"test: {info.precision} top-3 accuracy={metrics.test.served.top3_accuracy:.4f}")
    if metrics.test and metrics.test.baseline:
        click.echo(f"test: baseline TF-IDF+SVM {metrics.test.baseline.summary()}")
    # Which graph the folder serves and how closely it keeps the fp32 model's answers.
    click.echo(f"served graph: {info.precision} | agreement with fp32 (dev)={metrics.dev.agreement_with_fp32:.4f} | "
               f"review threshold={info.review_threshold}")
    if info.precision == "fp32":
        click.echo("note: no int8 graph kept the fp32 model's answers, so this model is served in fp32 "
                   "(see card/card.md; --require-int8 makes this an error)")


@click.command()
@click.argument("task", type=click.Choice(TASKS), required=False)
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None, help="Model folder.")
@click.option("--data", "data_file", type=click.Path(path_type=Path), default=None, help="Labelled file to score.")
@click.option("--card-dir", type=click.Path(path_type=Path), default=None,
              help="Where the evaluation card goes (default reports/<model>/eval-<data>; never the model folder).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--baseline", is_flag=True, help="Also fit TF-IDF + SVM on the model's training file and score it.")
@click.option("--baseline-data", "baseline_train", type=click.Path(path_type=Path), default=None,
              help="Fit the TF-IDF + SVM baseline on this training file instead.")
@_with_columns
@clean_errors
def evaluate(task, model_dir, data_file, card_dir, as_json, baseline, baseline_train, text_col, label_col,
             field_cols) -> None:
    """Score a model folder on a labelled file: accuracy, macro-F1, per-class detail, a model card."""
    from pipelines.common.data import ColumnChoice
    from pipelines.kinds import recipe_class
    from pipelines.recipe import evaluate_model
    from pipelines.tasks import dataset_for
    from shared.runtime import open_model_folder
    from shared.settings import default_model_dir
    from shared.task_kinds import kind_named

    if model_dir is None:
        if task is None:
            raise ConfigError("give a TASK or --model DIR")
        model_dir = default_model_dir(task)
    info = open_model_folder(model_dir)
    data_file = data_file or dataset_for(task or info.task).test_file
    recipe = recipe_class(kind_named(info.kind, model_dir)).for_evaluation(
        info, ColumnChoice(text_col, label_col, field_cols), baseline=baseline, baseline_train=baseline_train)
    evaluation = evaluate_model(recipe, model_dir, data_file, card_dir=card_dir)
    if as_json:
        click.echo(json.dumps(evaluation.to_dict()))
        return
    scores = evaluation.scores
    click.echo(f"model {evaluation.model_id} on {data_file} ({scores.n} {scores.unit})")
    click.echo(scores.evaluation_line())
    if evaluation.baseline:
        click.echo(f"baseline TF-IDF+SVM: accuracy {evaluation.baseline.accuracy:.4f}  "
                   f"macro-F1 {evaluation.baseline.macro_f1:.4f}")
    for name, part in evaluation.by_seen_text.items():
        baseline_part = "" if part.baseline_accuracy is None else f"  baseline accuracy {part.baseline_accuracy:.4f}"
        click.echo(f"text {name} in training ({part.n} items, {part.share:.1%}): accuracy {part.accuracy:.4f}  "
                   f"macro-F1 {part.macro_f1:.4f}  top-3 {part.top3_accuracy:.4f}{baseline_part}")
    click.echo(f"{scores.per_class_heading:<24}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}")
    for name, m in scores.per_class.items():
        click.echo(f"{name:<24}{m.precision:>10.4f}{m.recall:>10.4f}{m.f1:>10.4f}{m.support:>10}")
    click.echo(f"model card: {evaluation.card}")
