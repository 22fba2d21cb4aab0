"""``riskctl topics create|list``: the Kafka topics riskctl reads and writes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.common import BrokersOption, console, settings, user_errors

topics_app = typer.Typer(help="Manage the Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def create(
    brokers: BrokersOption = None,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions per topic (env: RISKCTL_KAFKA_PARTITIONS).")
    ] = None,
) -> None:
    """Create the applications, repayments and dead-letter topics (existing ones are kept)."""
    from flows.kafka_admin import create_topics

    with user_errors():
        kafka = settings(brokers=brokers, partitions=partitions).kafka
        created = create_topics(kafka)
        for name in kafka.topics:
            state = "created" if name in created else "exists"
            console.print(f"{name:40} {state}")


@topics_app.command("list")
def list_(brokers: BrokersOption = None) -> None:
    """List topics and their partition counts."""
    from flows.kafka_admin import list_topics

    with user_errors():
        kafka = settings(brokers=brokers).kafka
        table = Table(title=f"Topics on {kafka.brokers}")
        table.add_column("topic")
        table.add_column("partitions", justify="right")
        table.add_column("riskctl role")
        roles = dict(zip(kafka.topics, ("applications", "repayments", "dead letters"), strict=True))
        for topic in list_topics(kafka.brokers):
            table.add_row(topic.name, str(topic.partitions), roles.get(topic.name, ""))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")
