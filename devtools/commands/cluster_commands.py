"""``slm cluster``: the one-node Kubernetes cluster the charts' end-to-end tests run on."""

from __future__ import annotations

import sys

import click

from shared.console import clean_errors

__all__ = ["cluster"]

@click.group()
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
    from devtools import local_cluster

    state = local_cluster.up(local_cluster.ClusterConfig())
    _print_cluster_status(state)
    click.echo(f"up in {state['up_seconds']} s")


@cluster.command("down")
@clean_errors
def cluster_down() -> None:
    """Stop every pod and process of the node and leave the host as it was."""
    from devtools import local_cluster

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
    from devtools import local_cluster
    from devtools.local_cluster.skaffold import run_skaffold
    from shared.settings import REPO_ROOT

    sys.exit(run_skaffold(local_cluster.ClusterConfig(), args, REPO_ROOT))


@cluster.command("status")
@clean_errors
def cluster_status() -> None:
    """KUBECONFIG=<path> on the first line, then each process."""
    from devtools import local_cluster

    _print_cluster_status(local_cluster.status(local_cluster.ClusterConfig()))
