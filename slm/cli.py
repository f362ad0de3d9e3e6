"""``slm``: the one command line for slm-services (benchmarks have their own: ``python -m bench``).

Entry points stay thin: each command parses options, calls the library and reports.
Errors raised on purpose (:class:`shared.errors.SlmError`) print one clear line and exit 2,
never a stack trace (:mod:`slm.console`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from shared.errors import ConfigError
from shared.task_kinds import TASKS
from slm.compare import compare_command
from slm.console import clean_errors, configure_logging, validated
from slm.feedback import feedback


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """slm-services: fine-tuned small language models as task microservices."""
    from shared.settings import warn_unknown_settings

    configure_logging(verbose)
    warn_unknown_settings()  # a misspelt SLM_* name would otherwise be ignored without a word


main.add_command(compare_command)  # slm compare: a shadow's answers against the primary's (slm/compare.py)


main.add_command(feedback)  # slm feedback export: reviewers' verdicts into a training file (slm/feedback.py)


# --- Kafka -----------------------------------------------------------------------------

@main.group()
def kafka() -> None:
    """Run a local Apache Kafka broker (KRaft) on 127.0.0.1."""


def _broker_config(port: int | None, data_dir: Path | None, secure: bool = False):
    from dataclasses import replace

    from slm.local_kafka import BrokerConfig

    cfg = BrokerConfig.from_env()
    if port is not None:
        cfg = replace(cfg, port=port, controller_port=port + 1, ssl_port=port + 2, sasl_port=port + 3,
                      data_dir=cfg.cache_dir / f"kafka-data-{port}" if data_dir is None else data_dir)
    elif data_dir is not None:
        cfg = replace(cfg, data_dir=data_dir)
    return replace(cfg, secure=True) if secure else cfg


_port_option = click.option("--port", type=int, default=None, help="Broker port (default 9092 or SLM_KAFKA_PORT).")
_data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Log and data folder.")


@kafka.command("install")
@clean_errors
def kafka_install() -> None:
    """Fetch the broker's jars from Maven Central into the cache (once)."""
    from slm import local_kafka

    click.echo(f"kafka jars in {local_kafka.install(local_kafka.BrokerConfig.from_env())}")


@kafka.command("up")
@_port_option
@_data_dir_option
@click.option("--secure", is_flag=True,
              help="Also listen with mutual TLS (port+2) and SASL_SSL SCRAM-SHA-512 (port+3), certificates from a "
                   "throwaway CA; prints the client settings of each.")
@clean_errors
def kafka_up(port: int | None, data_dir: Path | None, secure: bool) -> None:
    """Fetch Kafka once, format storage, start the broker and wait until it answers."""
    from slm import local_kafka

    cfg = _broker_config(port, data_dir, secure)
    local_kafka.up(cfg)
    click.echo(f"kafka is up on {local_kafka.bootstrap(cfg)} (log: {local_kafka.status(cfg)['log_file']})")
    if secure:
        from slm.local_kafka.security import SecurityFiles, client_settings

        for protocol, settings in client_settings(SecurityFiles(cfg.security_dir), cfg.host, cfg.ssl_port,
                                                  cfg.sasl_port).items():
            shown = {k: ("<in " + str(SecurityFiles(cfg.security_dir).scram_password_file) + ">"
                         if k.endswith("PASSWORD") else v) for k, v in settings.items()}
            click.echo(f"{protocol}: " + " ".join(f"{k}={v}" for k, v in shown.items()))


@kafka.command("down")
@_port_option
@_data_dir_option
@clean_errors
def kafka_down(port: int | None, data_dir: Path | None) -> None:
    """Stop the broker cleanly."""
    from slm import local_kafka

    local_kafka.down(_broker_config(port, data_dir))
    click.echo("kafka is down")


@kafka.command("status")
@_port_option
@_data_dir_option
@clean_errors
def kafka_status(port: int | None, data_dir: Path | None) -> None:
    """Print the broker's state as JSON; exit 1 when it is not running."""
    from slm import local_kafka

    state = local_kafka.status(_broker_config(port, data_dir))
    click.echo(json.dumps(state, indent=2, default=str))
    sys.exit(0 if state["running"] else 1)


@kafka.command("groups")
@click.argument("group")
@click.option("--bootstrap", default=None, help="Another broker than the local one (host:port).")
@_port_option
@_data_dir_option
@clean_errors
def kafka_groups(group: str, bootstrap: str | None, port: int | None, data_dir: Path | None) -> None:
    """Members of consumer GROUP and the partitions each holds, as the broker reports them."""
    from kafka.errors import KafkaError

    from shared.kafka.groups import describe_group
    from slm import local_kafka

    bootstrap = bootstrap or local_kafka.bootstrap(_broker_config(port, data_dir))
    try:
        described = describe_group(bootstrap, group)
    except KafkaError as exc:
        raise local_kafka.BrokerError(f"cannot describe group {group!r} at {bootstrap}: {exc}") from None
    click.echo("\n".join(described.lines()))


# --- Training and evaluation -------------------------------------------------------------

_column_options = [
    click.option("--text-col", default=None, help="Column holding the text."),
    click.option("--label-col", default=None, help="Column holding the label."),
    click.option("--field-cols", default=None, help="Comma-separated extra columns passed as fields."),
]


def _with_columns(func):
    for option in reversed(_column_options):
        func = option(func)
    return func


# --- the local Kubernetes cluster ------------------------------------------------------

@main.group()
def cluster() -> None:
    """Run a one-node Kubernetes cluster on this machine (root; for the charts' end-to-end tests)."""


def _print_cluster_status(state: dict) -> None:
    click.echo(f"KUBECONFIG={state['kubeconfig']}")
    click.echo(f"server: {state['server']}  node ready: {state['node_ready']}")
    for name, pid in state["processes"].items():
        click.echo(f"  {name:<24} {'pid ' + str(pid) if pid else 'not running'}")
    click.echo(f"logs: {state['logs']}")


@cluster.command("up")
@clean_errors
def cluster_up() -> None:
    """Build what is missing into .cache, start the node, wait until it is Ready."""
    from slm import local_cluster

    state = local_cluster.up(local_cluster.ClusterConfig())
    _print_cluster_status(state)
    click.echo(f"up in {state['up_seconds']} s")


@cluster.command("down")
@clean_errors
def cluster_down() -> None:
    """Stop every pod and process of the node and leave the host as it was."""
    from slm import local_cluster

    leftovers = local_cluster.down(local_cluster.ClusterConfig())
    if leftovers:
        raise local_cluster.ClusterError(f"the cluster is down but these mounts stayed: {' '.join(leftovers)}")
    click.echo("cluster is down")


@cluster.command("skaffold", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@clean_errors
def cluster_skaffold(args: tuple[str, ...]) -> None:
    """skaffold ARGS against the local cluster (e.g. `run -p dev,local`, `delete -p dev,local`).

    Builds skaffold into .cache/bin once; podman serves skaffold the Docker API it asks for.
    """
    from shared.settings import REPO_ROOT
    from slm import local_cluster
    from slm.local_cluster.skaffold import run_skaffold

    sys.exit(run_skaffold(local_cluster.ClusterConfig(), args, REPO_ROOT))


@cluster.command("status")
@clean_errors
def cluster_status() -> None:
    """KUBECONFIG=<path> on the first line, then each process."""
    from slm import local_cluster

    _print_cluster_status(local_cluster.status(local_cluster.ClusterConfig()))


@main.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option("--data", "train_files", type=click.Path(path_type=Path), multiple=True,
              help="Training file (CSV/JSONL, CoNLL for entities); repeat to train on several as one.")
@click.option("--feedback", "feedback_files", type=click.Path(path_type=Path), multiple=True,
              help="Labelled file of `slm feedback export`, trained on whole (never dev, never capped); repeatable.")
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


@main.command()
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


# --- Model folders -----------------------------------------------------------------------

@main.group()
def models() -> None:
    """Installed model folders: list them, verify their files against their manifests."""


@models.command("verify")
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@clean_errors
def models_verify(folders: tuple[Path, ...]) -> None:
    """Check FOLDERS (default: models/<task> of each task) against their manifests, loading nothing.

    One line per folder, one per problem; exit 1 when any folder fails.
    """
    from slm.models import check_folder, installed_folders

    folders = folders or tuple(installed_folders())
    if not folders:
        raise ConfigError("no model folders given and none installed under models/")
    failed = 0
    for folder in folders:
        report = check_folder(folder)
        if report.ok:
            click.echo(f"ok    {folder} ({report.info.model_id}, {len(report.info.files)} files)")
            continue
        failed += 1
        for problem in report.problems:
            click.echo(f"FAIL  {problem}")
    if failed:
        sys.exit(1)


@models.command("list")
@clean_errors
def models_list() -> None:
    """Task, model id, served precision, headline metrics, size and integrity of each installed folder."""
    from slm.models import check_folder, headline_metrics, installed_folders

    rows = [("task", "model", "served", "metrics", "size", "files")]
    for folder in installed_folders():
        report = check_folder(folder)
        info = report.info
        rows.append((folder.name, info.model_id if info else "?", info.precision if info else "?",
                     headline_metrics(info) if info else "?", f"{report.size_bytes / 1e6:.1f} MB",
                     "ok" if report.ok else f"{len(report.problems)} problem(s)"))
    if len(rows) == 1:
        click.echo("no model folders under models/")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@models.command("manifest")
@click.argument("folder", type=click.Path(path_type=Path))
@clean_errors
def models_manifest(folder: Path) -> None:
    """Rewrite FOLDER's manifest from its files as they are now (after a change you made on purpose)."""
    from shared.runtime import read_model_info, write_model_info

    info = read_model_info(folder)
    write_model_info(folder, info)
    click.echo(f"{folder}: manifest of {len(info.files)} files (+{len(info.optional_files)} optional) written")


# --- Drift -------------------------------------------------------------------------------

@main.group("drift", invoke_without_command=True)
@click.option("--task", type=click.Choice(TASKS), default=None, help="The task whose results are read.")
@click.option("--bootstrap", default=None, help="Kafka host:port (default SLM_KAFKA_BOOTSTRAP).")
@click.option("--topic-prefix", default=None, help="Topic prefix (default SLM_KAFKA_TOPIC_PREFIX).")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="Last results read (default SLM_DRIFT_WINDOW, 1000): each partition from N offsets before "
                   "its end; under exactly-once transaction markers take offsets, so fewer may be read.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder holding the reference (default models/<task>).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.pass_context
@clean_errors
def drift(ctx, task: str | None, bootstrap: str | None, topic_prefix: str | None, window: int | None,
          model_dir: Path | None, as_json: bool) -> None:
    """PSI of TASK's last results on <task>.results against its model's drift reference.

    Label and score only: results carry no text, so text length is the service's gauge
    (slm.drift.psi) only. Under 0.1: no shift; 0.1 to 0.25: moderate; above: large.
    Under exactly-once, transaction markers take offsets: the last N offsets can hold fewer
    than N results (the report says how many it read).
    """
    if ctx.invoked_subcommand is not None:
        return
    from shared.drift import REFERENCE_FILE, DriftReference
    from shared.kafka import TaskTopics
    from shared.settings import KafkaSettings, ServiceSettings, default_model_dir
    from slm.drift import drift_report, read_last_records, verdict

    if task is None:
        raise ConfigError("give --task (or a subcommand: slm drift reference)")
    model_dir = model_dir or default_model_dir(task)
    reference = DriftReference.read(model_dir)
    if reference is None:
        raise ConfigError(f"{model_dir} has no {REFERENCE_FILE}: `slm drift reference --task {task} --model "
                          f"{model_dir}` writes it")
    kafka = validated(KafkaSettings, **({"bootstrap": bootstrap} if bootstrap else {}),
                      **({"topic_prefix": topic_prefix} if topic_prefix is not None else {}))
    if not kafka.bootstrap:
        raise ConfigError("give --bootstrap or set SLM_KAFKA_BOOTSTRAP")
    window = window or validated(ServiceSettings).drift_window
    topic = TaskTopics(task, kafka.topic_prefix).results
    records = read_last_records(kafka, topic, window)
    report = drift_report(reference, [r.value for r in records])
    if as_json:
        click.echo(json.dumps({"task": task, "topic": topic, "window": window, **report.to_dict()}))
        return
    click.echo(f"{topic}: last {report.read} records, {report.used} results of {report.model}")
    for model, n in sorted(report.other_models.items()):
        click.echo(f"  {n} results of another model ({model}) left out")
    if report.unreadable:
        click.echo(f"  {report.unreadable} records that are no result left out")
    if not report.psi:
        click.echo("no results of this model to compare")
        return
    for feature, value in report.psi.items():
        click.echo(f"psi {feature:<6} {value:.4f}  {verdict(value)}")
    click.echo("psi length: not in the results; the service's gauge slm.drift.psi reports it")


@drift.command("reference")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder (default models/<task>).")
@click.option("--data", "data_file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Labelled held-out file (default: the task's test split).")
@clean_errors
def drift_reference(task: str, model_dir: Path | None, data_file: Path | None) -> None:
    """Write MODEL's drift reference from its answers on DATA, and rewrite its manifest.

    For a folder trained before training wrote one (training does, from its test file).
    """
    from pipelines.drift_reference import refresh_drift_reference
    from pipelines.tasks import dataset_for
    from shared.drift import REFERENCE_FILE
    from shared.settings import default_model_dir

    model_dir = model_dir or default_model_dir(task)
    data_file = data_file or dataset_for(task).test_file
    reference = refresh_drift_reference(model_dir, data_file)
    click.echo(f"{model_dir / REFERENCE_FILE}: {reference.items} answers of {reference.model} on {data_file}; "
               "manifest rewritten")


# --- Serving -----------------------------------------------------------------------------



@main.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None, help="Model folder.")
@click.option("--kafka", "bootstrap", default=None, help="Kafka bootstrap servers; also SLM_KAFKA_BOOTSTRAP.")
@click.option("--delivery", type=click.Choice(["at_least_once", "exactly_once"]), default=None,
              help="Kafka delivery (SLM_KAFKA_DELIVERY, default at_least_once); exactly_once: one transaction "
                   "per micro-batch, readers of the results read read_committed.")
@click.option("--shadow", is_flag=True, default=None,
              help="Serve the model as a shadow of the task's primary (SLM_KAFKA_SHADOW): consume the same requests "
                   "in group slm-<task>-shadow, publish to <task>.shadow.results only, refuse REST with 503.")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="Run as this many Ray Serve replicas on a local Ray cluster (SLM_RAY_NUM_REPLICAS).")
@click.option("--min-replicas", type=click.IntRange(min=0), default=None, help="Autoscale from (Ray Serve).")
@click.option("--max-replicas", type=click.IntRange(min=1), default=None, help="Autoscale up to (Ray Serve).")
@click.option("--cpus-per-replica", type=float, default=None,
              help="Ray CPU request per replica; ONNX Runtime threads follow it (default 1).")
@clean_errors
def serve(task: str, port: int, host: str, model_dir: Path | None, bootstrap: str | None, delivery: str | None,
          shadow: bool | None, replicas: int | None, min_replicas: int | None, max_replicas: int | None,
          cpus_per_replica: float | None) -> None:
    """Serve TASK: REST on HOST:PORT, and the Kafka loop when a broker is given.

    One BentoML process by default; with --replicas or --min/--max-replicas, the same BentoML
    service as Ray Serve replicas, each a member of the task's consumer group.
    """
    from shared.runtime import open_model_folder
    from shared.settings import ServingSettings

    # The settings, validated once (a bad SLM_* value is one line), the options in place of theirs.
    kafka_options = {"bootstrap": bootstrap, "delivery": delivery, "shadow": shadow}
    settings = validated(ServingSettings.from_env, kafka={k: v for k, v in kafka_options.items() if v})
    if settings.kafka.shadow:
        from shared.kafka.topics import TaskTopics

        if any(v is not None for v in (replicas, min_replicas, max_replicas, cpus_per_replica)):
            raise ConfigError("--shadow with Ray Serve replicas is not supported yet: serve the shadow as one "
                              "process (no --replicas), or as the chart's shadow Deployment (mode: deployment)")
        TaskTopics.of(task, settings.kafka).consumer_group(settings.kafka.group_id)  # not the primary's group
    model_dir = Path(model_dir or settings.model_dir(task)).resolve()
    open_model_folder(model_dir)  # refuse here, in one line, rather than in the worker
    if settings.kafka.bootstrap:
        from shared.kafka.preflight import check_credentials

        check_credentials(settings.kafka)  # a refused password or certificate: one line, exit 2
    settings = settings.replace(service={"model_dir": model_dir})
    ray_options = {"num_replicas": replicas, "min_replicas": min_replicas, "max_replicas": max_replicas,
                   "cpus_per_replica": cpus_per_replica}
    if any(v is not None for v in ray_options.values()):
        from shared.settings import ReplicaSettings
        from slm.replicas import serve_replicas

        replica_settings = validated(ReplicaSettings, **{k: v for k, v in ray_options.items() if v is not None})
        serve_replicas(task, host, port, settings, replica_settings)
        return
    from shared.settings import service_import

    # The BentoML server is another process: it reads the settings from the environment they give it.
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    os.execve(bentoml_cli, [bentoml_cli, "serve", service_import(task), "--host", host, "--port", str(port)],
              settings.environment())


_tasks_option = click.option("--task", "tasks", type=click.Choice(TASKS), multiple=True,
                             help="Only this task (repeat for several; default all four).")


@main.command()
@_tasks_option
@click.option("--limit", type=int, default=None, help="Stream only the first N test rows of each task.")
@click.option("--keep-running", is_flag=True, help="Leave the broker and the services running afterwards.")
@clean_errors
def demo(tasks: tuple[str, ...], limit: int | None, keep_running: bool) -> None:
    """Broker and services up, stream each task's test set through Kafka, live view, summaries."""
    from slm.demo import MALFORMED, run_demo

    broker, serving = _stack_settings()
    summaries, services = run_demo(list(tasks or TASKS), broker, serving, limit=limit, keep_running=keep_running)
    for summary in summaries:
        click.echo("\n".join(["", f"== {summary.task} ==", *summary.lines()]))
    if keep_running:
        _echo_running(services)
        click.echo("stop them with: slm down")
    if any(s.results < s.sent or s.dlq < len(MALFORMED) for s in summaries):
        raise SystemExit(1)


def _stack_settings():
    """The local broker's settings and the services' (``slm up``, ``slm demo``), each validated once."""
    from shared.settings import ServingSettings
    from slm.local_kafka import BrokerConfig

    return BrokerConfig.from_env(), validated(ServingSettings.from_env)


def _echo_running(services) -> None:
    for service in services:
        click.echo(f"{service.task:<13} REST {service.url}/predict  (docs {service.url}/docs, log {service.log})")
    click.echo("Kafka         127.0.0.1:9092, topics <task>.requests / .results / .review / .dlq")


@main.command()
@_tasks_option
@click.option("--port-base", type=int, default=None,
              help="REST ports base+1..base+4 in task order (default 3001-3004).")
@clean_errors
def up(tasks: tuple[str, ...], port_base: int | None) -> None:
    """Start the local broker and the task services (the release models in models/); no traffic."""
    from slm import stack

    _, services = stack.up(list(tasks or TASKS), *_stack_settings(), port_base=port_base)
    _echo_running(services)
    click.echo("stop them with: slm down")


@main.command()
@clean_errors
def down() -> None:
    """Stop the services `slm up` started, then the local broker."""
    from slm import stack
    from slm.local_kafka import BrokerConfig

    stopped = stack.down(BrokerConfig.from_env())
    click.echo(f"stopped: {', '.join(stopped) or 'no services'}; broker down")



# --- Container images ----------------------------------------------------------------------

@main.group("images")
def images_group() -> None:
    """Images of the task services, built by podman without a registry; storage under .cache (root)."""


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.0f} MB"


@images_group.command("build")
@_tasks_option
@click.option("--rebuild-base", is_flag=True, help="Debootstrap the base image again (e.g. for newer Debian updates).")
@click.option("--no-archive", is_flag=True, help="Skip .cache/images/<image>.tar (the archive for ctr images import).")
@click.option("--tag", default=None, help="Another image name than slm-<task>:<appVersion> (one --task; skaffold's $IMAGE).")
@click.option("--load", is_flag=True, help="Import each image into the local cluster's containerd (slm cluster up).")
@clean_errors
def images_build(tasks: tuple[str, ...], rebuild_base: bool, no_archive: bool, tag: str | None, load: bool) -> None:
    """Build slm-<task>:<chart appVersion> from services/Dockerfile on a debootstrap'ed Debian base.

    One line per image: its tag, size and build time, and the archive written for containerd.
    """
    if tag and len(tasks) != 1:
        raise ConfigError("--tag names one image: give exactly one --task with it")
    if load and no_archive:
        raise ConfigError("--load imports the archive: drop --no-archive")
    from slm.images import ImageLayout, build_task_image, ensure_base_image, file_lock, prepare_podman
    from slm.images.build import build_ca_bundle

    layout = ImageLayout()
    with file_lock(layout.lock_file):
        podman = prepare_podman(layout)
        base = ensure_base_image(podman, layout, rebuild=rebuild_base)
        how = "cached (same recipe)" if base.seconds is None else f"built in {base.seconds:.0f}s"
        click.echo(f"{base.tag}  {_megabytes(base.size_bytes)}  {how}")
        ca_bundle = build_ca_bundle()
        for task in tasks or TASKS:
            image = build_task_image(podman, layout, task, base.tag, archive=not no_archive, ca_bundle=ca_bundle,
                                     tag=tag)
            line = f"{image.tag}  {_megabytes(image.size_bytes)}  built in {image.build_seconds:.1f}s"
            if image.archive is not None:
                saved = "unchanged" if image.save_seconds is None else f"saved in {image.save_seconds:.1f}s"
                line += f"  {image.archive} ({saved})"
            if load:
                _load_into_local_cluster(image.archive)
                line += "  loaded into the local cluster"
            click.echo(line)


def _load_into_local_cluster(archive: Path) -> None:
    from slm.images import load_into_containerd
    from slm.local_cluster import ClusterConfig, ClusterError

    socket = ClusterConfig().containerd_socket
    if not socket.is_socket():
        raise ClusterError(f"no local cluster to load into ({socket} is missing): `slm cluster up` starts it")
    load_into_containerd(archive, socket)


@images_group.command("list")
@clean_errors
def images_list() -> None:
    """The slm images in .cache/containers: name, size, creation time, archive."""
    from slm.images import ImageLayout, list_images
    from slm.images.podman import Podman

    layout = ImageLayout()
    if not (layout.containers_dir / "storage").is_dir():
        click.echo("no images yet (slm images build)")
        return
    for row in list_images(Podman.found(layout), layout):
        click.echo(f"{row.name:<48} {_megabytes(row.size_bytes):>8}  {row.created}  {row.archive or '-'}")


@images_group.command("load")
@_tasks_option
@click.option("--address", required=True, help="containerd's socket, e.g. /run/containerd/containerd.sock.")
@click.option("--namespace", default="k8s.io", show_default=True, help="containerd namespace (the kubelet's).")
@clean_errors
def images_load(tasks: tuple[str, ...], address: str, namespace: str) -> None:
    """Import the archives of `slm images build` into a containerd, where the kubelet finds them."""
    from slm.images import ImageLayout, load_into_containerd, task_image_tag

    layout = ImageLayout()
    for task in tasks or TASKS:
        names = load_into_containerd(layout.archive(task_image_tag(task)), address, namespace=namespace)
        click.echo(f"{task}: {', '.join(names) or 'imported'}")


@images_group.command("sync")
@clean_errors
def images_sync() -> None:
    """Give the local cluster's containerd every name podman has for an slm image.

    skaffold (profile ``local``) deploys what it built under a tag of the image ID that it sets
    through podman's Docker API; its deploy hook runs this so the kubelet finds that tag.
    """
    from slm.images import ImageLayout, file_lock
    from slm.images.containerd import sync_names
    from slm.images.podman import Podman
    from slm.local_cluster import ClusterConfig, ClusterError

    socket = ClusterConfig().containerd_socket
    if not socket.is_socket():
        raise ClusterError(f"no local cluster to load into ({socket} is missing): `slm cluster up` starts it")
    layout = ImageLayout()
    podman = Podman.found(layout)

    def save(image_id: str, name: str, archive: Path) -> None:
        podman.run("tag", image_id, name, what=f"podman tag of {name}", log=layout.log("sync"))
        podman.run("save", "--format", "docker-archive", "--output", str(archive), name,
                   what=f"podman save of {name}", log=layout.log("sync"), timeout=900)

    with file_lock(layout.lock_file):
        podman.prepare()
        added = sync_names(podman.images(), socket, save=save, work_dir=layout.images_dir)
    click.echo(f"added to the local cluster: {' '.join(added)}" if added else "the local cluster has every slm image name")


if __name__ == "__main__":
    main()
