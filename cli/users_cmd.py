"""``riskctl db init-users``: the writer and analyst users on a ClickHouse server.

The statements live in ``clickhouse/server/users.sql``; names and passwords come from options
or ``RISKCTL_*`` variables at this edge. Passwords are written into the statements as quoted
SQL strings and never printed: not by ``--dry-run``, not in errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from string import Template
from typing import Annotated

import typer

from cli.common import StoreOption, UsageError, console, settings, user_errors
from flows.resources import package_dir
from flows.secret import Secret, reveal
from flows.sql_literal import sql_string
from flows.store import Store, StoreError, open_store

USERS_SQL = package_dir("flows.sql") / "server" / "users.sql"
MIN_PASSWORD = 12
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Accounts:
    database: str
    writer_user: str
    writer_password: Secret | str
    analyst_user: str
    analyst_password: Secret | str

    def __post_init__(self) -> None:
        # Held as Secrets, so that printing the accounts (or a traceback's locals) shows none.
        for name in ("writer_password", "analyst_password"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value))
        for label, name in (
            ("database", self.database),
            ("writer user", self.writer_user),
            ("analyst user", self.analyst_user),
        ):
            if not _IDENTIFIER.match(name):
                raise UsageError(f"{label} name {name!r}: use letters, digits and _ only")
        if self.writer_user == self.analyst_user:
            raise UsageError("the writer and the analyst must be different users")
        for label, password in zip(("writer", "analyst"), self.secrets, strict=True):
            if len(password) < MIN_PASSWORD:
                raise UsageError(
                    f"the {label} password must have at least {MIN_PASSWORD} characters "
                    f"(set RISKCTL_{label.upper()}_PASSWORD)"
                )

    @property
    def secrets(self) -> tuple[str, str]:
        return (str(reveal(self.writer_password)), str(reveal(self.analyst_password)))


def split_statements(text: str) -> list[str]:
    """The statements of a SQL text, split at each ``;`` outside quotes and comments, with
    the comments dropped."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            end = _closing_quote(text, i)
            current.append(text[i:end])
            i = end
        elif text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [statement.strip() for statement in statements if statement.strip()]


def _closing_quote(text: str, start: int) -> int:
    """The index just past the quoted string or identifier opening at ``start`` (a backslash
    escapes the next character; a doubled quote stands for itself)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == quote:
            if text.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(text)  # unterminated: the rest belongs to it, as ClickHouse would read it


def render(
    accounts: Accounts, template: str | None = None, *, hide_passwords: bool = False
) -> list[str]:
    """The statements of users.sql for these accounts, ready to run.

    The template is split into statements before any value goes in, so nothing in a value
    (a ``;``, a quote, a newline) can change where a statement ends. With ``hide_passwords``
    the passwords are never put in at all: each is ``'***'``.
    """
    text = USERS_SQL.read_text() if template is None else template
    writer, analyst = (
        ("'***'", "'***'") if hide_passwords else tuple(sql_string(s) for s in accounts.secrets)
    )
    values = {
        "database": accounts.database,
        "writer_user": accounts.writer_user,
        "analyst_user": accounts.analyst_user,
        "writer_password": writer,
        "analyst_password": analyst,
    }
    try:
        return [Template(statement).substitute(values) for statement in split_statements(text)]
    except (KeyError, ValueError) as exc:
        raise StoreError(f"{USERS_SQL.name} has a bad placeholder: {exc}") from exc


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, raw or as its quoted literal, replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(sql_string(secret), "'***'").replace(secret, "***")
    return text


def apply(store: Store, statements: list[str], secrets: Iterable[str]) -> int:
    """Run the statements in order; an error names the statement without any password."""
    secrets = tuple(secrets)
    for number, statement in enumerate(statements, start=1):
        try:
            store.command(statement)
        except StoreError as exc:
            first = redact(statement.splitlines()[0], secrets)
            raise StoreError(
                f"users.sql statement {number} ({first} ...): {redact(str(exc), secrets)}"
            ) from None
    return len(statements)


def init_users(
    store: StoreOption = None,
    writer_user: Annotated[
        str,
        typer.Option(
            envvar="RISKCTL_WRITER_USER", help="The dataflow's user (env: RISKCTL_WRITER_USER)."
        ),
    ] = "riskctl_writer",
    writer_password: Annotated[
        str,
        typer.Option(
            envvar="RISKCTL_WRITER_PASSWORD",
            help="Its password (env: RISKCTL_WRITER_PASSWORD).",
            show_default=False,
        ),
    ] = "",
    analyst_user: Annotated[
        str,
        typer.Option(
            envvar="RISKCTL_ANALYST_USER",
            help="The read-only user for analysts and Grafana (env: RISKCTL_ANALYST_USER).",
        ),
    ] = "riskctl_analyst",
    analyst_password: Annotated[
        str,
        typer.Option(
            envvar="RISKCTL_ANALYST_PASSWORD",
            help="Its password (env: RISKCTL_ANALYST_PASSWORD).",
            show_default=False,
        ),
    ] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the statements (passwords hidden); run none.")
    ] = False,
) -> None:
    """Create or update the writer and read-only analyst users and their roles (server only).

    Run it as an administrator (--store http://admin:...@host:8123/db) after `db migrate`.
    Running it again resets the grants and sets the passwords again.
    """
    with user_errors():
        url = settings(None, store).store
        if url.embedded:
            raise UsageError(
                "users and grants exist only on a ClickHouse server; the embedded store has "
                "no access control (give --store http://admin:password@host:8123/db)"
            )
        accounts = Accounts(
            database=url.database,
            writer_user=writer_user,
            writer_password=writer_password,
            analyst_user=analyst_user,
            analyst_password=analyst_password,
        )
        if dry_run:
            for statement in render(accounts, hide_passwords=True):
                typer.echo(statement + ";")
            return
        statements = render(accounts)
        db = open_store(url)
        try:
            count = apply(db, statements, accounts.secrets)
            where = db.description
        finally:
            db.close()
        console.print(
            f"users {writer_user} (writer) and {analyst_user} (read-only) ready on {where} "
            f"({count} statements)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    # A subcommand of `db`, next to migrate and status; the group itself lives in store_cmds.
    from cli.store_cmds import db_app

    db_app.command("init-users")(init_users)
