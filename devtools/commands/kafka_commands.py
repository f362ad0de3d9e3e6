"""``slm kafka``: a local Apache Kafka broker (KRaft, one node) on 127.0.0.1, and what its groups hold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from shared.console import clean_errors

__all__ = ["kafka"]

@click.group()
def kafka() -> None:
    """Run a local Apache Kafka broker (KRaft) on 127.0.0.1."""


def _broker_config(port: int | None, data_dir: Path | None, secure: bool = False, cluster_listener: str | None = None):
    from dataclasses import replace

    from devtools.local_kafka import BrokerConfig

    cfg = BrokerConfig.from_env()
    if port is not None:
        cfg = replace(cfg, port=port, controller_port=port + 1, ssl_port=port + 2, sasl_port=port + 3,
                      data_dir=cfg.cache_dir / f"kafka-data-{port}" if data_dir is None else data_dir)
    elif data_dir is not None:
        cfg = replace(cfg, data_dir=data_dir)
    if cluster_listener:
        cfg = replace(cfg, cluster_listener=cluster_listener)
    return replace(cfg, secure=True) if secure else cfg


_port_option = click.option("--port", type=int, default=None, help="Broker port (default 9092 or SLM_KAFKA_PORT).")
_data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Log and data folder.")


@kafka.command("install")
@clean_errors
def kafka_install() -> None:
    """Fetch the broker's jars from Maven Central into the cache (once)."""
    from devtools import local_kafka

    click.echo(f"kafka jars in {local_kafka.install(local_kafka.BrokerConfig.from_env())}")


@kafka.command("up")
@_port_option
@_data_dir_option
@click.option("--secure", is_flag=True,
              help="Also listen with mutual TLS (port+2) and SASL_SSL SCRAM-SHA-512 (port+3), certificates from a "
                   "throwaway CA; prints the client settings of each.")
@click.option("--cluster-listener", default=None, metavar="HOST:PORT",
              help="A second listener for the pods of the local cluster, on its node address "
                   "(e.g. 10.244.0.1:19094, once `slm cluster up` has made the bridge).")
@clean_errors
def kafka_up(port: int | None, data_dir: Path | None, secure: bool, cluster_listener: str | None) -> None:
    """Fetch Kafka once, format storage, start the broker and wait until it answers."""
    from devtools import local_kafka

    cfg = _broker_config(port, data_dir, secure, cluster_listener)
    local_kafka.up(cfg)
    click.echo(f"kafka is up on {local_kafka.bootstrap(cfg)} (log: {local_kafka.status(cfg)['log_file']})")
    if cfg.cluster_listener:
        click.echo(f"pods of the local cluster reach it at {cfg.cluster_listener}")
    if secure:
        from devtools.local_kafka.security import SecurityFiles, client_settings

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
    from devtools import local_kafka

    local_kafka.down(_broker_config(port, data_dir))
    click.echo("kafka is down")


@kafka.command("status")
@_port_option
@_data_dir_option
@clean_errors
def kafka_status(port: int | None, data_dir: Path | None) -> None:
    """Print the broker's state as JSON; exit 1 when it is not running."""
    from devtools import local_kafka

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

    from devtools import local_kafka
    from shared.kafka.groups import describe_group

    bootstrap = bootstrap or local_kafka.bootstrap(_broker_config(port, data_dir))
    try:
        described = describe_group(bootstrap, group)
    except KafkaError as exc:
        raise local_kafka.BrokerError(f"cannot describe group {group!r} at {bootstrap}: {exc}") from None
    click.echo("\n".join(described.lines()))
