"""`image-catalogue tokens ...`: issue, list, revoke and purge API tokens."""

import click

from app.cli.group import defaulted_option, tokens_cli
from app.db import db
from app.tokens import (
    AmbiguousTokenId,
    issue_token,
    list_tokens,
    purge_expired_tokens,
    revoke_tokens,
)


def _project_id(ctx, param, value):
    if value == "":
        # Keystone never issues an empty project id; it would see images owned by "".
        raise click.BadParameter(
            "an empty project id is no project: give one, or leave --project out for a token "
            "that sees public images only"
        )
    return value


@tokens_cli.command("issue")
@click.option(
    "--project",
    callback=_project_id,
    help="Project id; without one the token sees public images only.",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    default=("member",),
    show_default=True,
    help="A role (repeatable); 'admin' grants admin visibility.",
)
@defaulted_option(
    "--ttl", click.IntRange(min=0), 86400, "Lifetime in seconds; 0 means the token never expires."
)
def issue(project, roles, ttl):
    """Issue a token and print it (only the token, on stdout)."""
    click.echo(issue_token(db.session, project_id=project, roles=roles, ttl_seconds=ttl))


@tokens_cli.command("revoke")
@click.argument("token", required=False)
@click.option("--id", "token_id", help="Revoke the token with this id (from `tokens list`).")
@click.option("--project", help="Revoke every token of this project instead.")
def revoke(token, token_id, project):
    """Revoke TOKEN, the token --id, or all tokens of --project; print how many were revoked.

    Workers that saw a token recently keep accepting it for up to
    TOKEN_CACHE_SECONDS. A token starting with "-" (version 1.0 issued such
    tokens) goes after "--": tokens revoke -- -TOKEN.
    """
    if sum(value is not None for value in (token, token_id, project)) != 1:
        raise click.UsageError("give exactly one of TOKEN, --id or --project")
    try:
        revoked = revoke_tokens(db.session, token=token, token_id=token_id, project_id=project)
    except AmbiguousTokenId as error:
        raise click.ClickException(str(error)) from None
    click.echo(revoked)


@tokens_cli.command("list")
def list_command():
    """List tokens: id (the start of the stored hash), project, roles, expiry. No secrets.

    The id is what `tokens revoke --id` takes; the token itself cannot be recovered.
    """
    rows = list_tokens(db.session)
    click.echo(f"{'ID':14}{'PROJECT':34}{'ROLES':24}{'CREATED':22}EXPIRES")
    for token in rows:
        expires = _minute(token.expires_at) if token.expires_at else "never"
        if token.expired:
            expires += " (expired)"
        click.echo(
            f"{token.id:14}{token.project_id or '-':34}{','.join(token.roles):24}"
            f"{_minute(token.created_at):22}{expires}"
        )


@tokens_cli.command("purge")
def purge():
    """Delete expired tokens; print how many."""
    click.echo(purge_expired_tokens(db.session))


def _minute(moment):
    return moment.strftime("%Y-%m-%d %H:%M UTC")
