"""``slm review up | down | status``: a local Label Studio on 127.0.0.1 for the review loop (plugged into the
product's ``slm review`` group, beside ``slm review bridge``)."""

from __future__ import annotations

import json

import click

from shared.console import clean_errors

__all__ = ["review_down", "review_install", "review_status", "review_up"]


def _projects(status: dict) -> dict[str, int]:
    """One project per task whose model folder is here, with that model's labels (as the bridge makes them)."""
    from shared.errors import ModelError
    from shared.review.label_studio import LabelStudio
    from shared.review.labelling import label_config, project_title
    from shared.runtime import read_model_info
    from shared.settings import default_model_dir
    from shared.task_kinds import ENTITIES, TASKS, kind_named

    made = {}
    client = LabelStudio(status["url"], status["token"])
    try:
        for task in TASKS:
            folder = default_model_dir(task)
            try:
                info = read_model_info(folder)
            except ModelError:
                continue
            entities = kind_named(info.kind, folder).name == ENTITIES.name
            made[task] = client.ensure_project(project_title(task), label_config(info.labels, entities=entities))
    finally:
        client.close()
    return made


@click.command("install")
@clean_errors
def review_install() -> None:
    """Install Label Studio into its own environment under .cache (once; `up` does it when needed)."""
    from devtools.label_studio.config import LabelStudioConfig
    from devtools.label_studio.lifecycle import install

    click.echo(f"Label Studio in {install(LabelStudioConfig.from_env()).parent.parent}")


@click.command("up")
@clean_errors
def review_up() -> None:
    """Install (once) and start a local Label Studio on 127.0.0.1, with an admin, a token and one project per task."""
    from devtools.label_studio.config import LabelStudioConfig
    from devtools.label_studio.lifecycle import up

    status = up(LabelStudioConfig.from_env())
    projects = _projects(status)
    click.echo(f"Label Studio at {status['url']} (log in as {status['username']}; `slm review status --json` "
               f"prints the password and the API token)")
    click.echo("projects: " + ", ".join(f"{task} {project}" for task, project in projects.items()))


@click.command("down")
@clean_errors
def review_down() -> None:
    """Stop the local Label Studio (its data stays under .cache/label-studio)."""
    from devtools.label_studio.config import LabelStudioConfig
    from devtools.label_studio.lifecycle import down

    down(LabelStudioConfig.from_env())


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print {url, token, username, password, running, ...} as JSON.")
@click.option("--env", "as_env", is_flag=True,
              help="Print the bridge's settings as shell exports: eval \"$(slm review status --env)\".")
@clean_errors
def review_status(as_json: bool, as_env: bool) -> None:
    """Whether the local Label Studio runs, where, and its credentials."""
    import shlex

    from devtools.label_studio.config import LabelStudioConfig
    from devtools.label_studio.lifecycle import status

    state = status(LabelStudioConfig.from_env())
    if as_json:
        click.echo(json.dumps(state))
        return
    if as_env:
        click.echo(f"export SLM_REVIEW_LABEL_STUDIO_URL={shlex.quote(state['url'])} "
                   f"SLM_REVIEW_LABEL_STUDIO_TOKEN={shlex.quote(state['token'] or '')}")
        return
    click.echo(f"Label Studio {'running' if state['running'] else 'not running'} at {state['url']}"
               + (f" (pid {state['pid']})" if state["pid"] else ""))
