"""`chiptwin user …`: the people who may sign in to the panel, and their roles.

chiptwin user add ana --role scientist            # asks for the password twice
printf '%s\n' "$PASSWORD" | chiptwin user add ana --role scientist --password-stdin
chiptwin user role ana technician                  # demote: her open panel sessions end
chiptwin user deactivate tom                       # he can no longer sign in; open sessions end
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ui.cli.store import DbOption

user_app = typer.Typer(
    help="Users of the panel: add them, set passwords and roles, deactivate them, list them.", no_args_is_help=True
)
StdinOption = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Sign-in name (1–64 characters).")],
    role: Annotated[str, typer.Option("--role", help="technician, scientist or admin.")] = "technician",
    display_name: Annotated[Optional[str], typer.Option("--display-name", help="Name shown in the panel.")] = None,
    password_stdin: StdinOption = False,
    db: DbOption = None,
) -> None:
    """Add a user who can sign in to the panel (recorded in the audit trail)."""
    from store import open_store
    from ui.panel.auth import add_user

    engine = open_store(db)
    password = _password(password_stdin)
    add_user(engine, username, role, password, display_name=display_name or "")
    typer.echo(f"user {username!r} added with role {role}")


@user_app.command("passwd")
def user_passwd(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    password_stdin: StdinOption = False,
    db: DbOption = None,
) -> None:
    """Set a user's password (recorded in the audit trail)."""
    from store import open_store
    from ui.panel.auth import set_password

    engine = open_store(db)
    password = _password(password_stdin)
    set_password(engine, username, password)
    typer.echo(f"password of {username!r} set")


@user_app.command("role")
def user_role(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
    role: Annotated[str, typer.Argument(help="technician, scientist or admin.")],
    db: DbOption = None,
) -> None:
    """Give a user another role (recorded in the audit trail); their open panel sessions end."""
    from store import open_store
    from ui.panel.auth import set_role

    engine = open_store(db)
    set_role(engine, username, role)
    typer.echo(f"user {username!r} now has the role {role}; their open panel sessions have ended")


@user_app.command("deactivate")
def user_deactivate(username: Annotated[str, typer.Argument(help="Sign-in name.")], db: DbOption = None) -> None:
    """Stop a user from signing in (recorded in the audit trail); their open panel sessions end."""
    from store import open_store
    from ui.panel.auth import set_active

    engine = open_store(db)
    set_active(engine, username, False)
    typer.echo(f"user {username!r} deactivated; their open panel sessions have ended")


@user_app.command("activate")
def user_activate(username: Annotated[str, typer.Argument(help="Sign-in name.")], db: DbOption = None) -> None:
    """Let a deactivated user sign in again (recorded in the audit trail)."""
    from store import open_store
    from ui.panel.auth import set_active

    engine = open_store(db)
    set_active(engine, username, True)
    typer.echo(f"user {username!r} may sign in again")


@user_app.command("list")
def user_list(db: DbOption = None) -> None:
    """Every user, their role, and whether they can sign in."""
    from store import open_store
    from ui.panel.auth import list_users

    for user in list_users(open_store(db)):
        state = "can sign in" if user["can_sign_in"] else ("inactive" if not user["active"] else "no password")
        typer.echo(f"{user['username']:<24} {user['role']:<12} {state}")


def register(app: typer.Typer) -> None:
    """Add `user` to ``app``."""
    app.add_typer(user_app, name="user")
