"""The store URL is parsed once, where the settings are read, into a typed value."""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.jobs import RunOptions, run_files
from flows.model import ScoringModel
from flows.settings import Settings, from_env
from flows.store import Store, StoreURL, open_store, parse_store_url
from flows.store.url import StoreURLError
from tests.conftest import query_rows

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True)
secrets = st.text(string.printable, max_size=20)
hosts = st.sampled_from(["clickhouse", "127.0.0.1", "ch.example.com", "::1"])


@given(
    scheme=st.sampled_from(["http", "https"]),
    user=names,
    password=secrets,
    host=hosts,
    port=st.integers(1, 65535),
    database=names,
)
def test_a_server_url_survives_reveal_and_parse(
    scheme: str, user: str, password: str, host: str, port: int, database: str
) -> None:
    netloc = f"[{host}]" if ":" in host else host
    auth = user + (f":{quote(password, safe='')}" if password else "")
    url = parse_store_url(f"{scheme}://{auth}@{netloc}:{port}/{database}")
    assert (url.host, url.port, url.username, url.database) == (host, port, user, database)
    assert url.password.reveal() == password
    assert parse_store_url(url.reveal()) == url
    shown = f"{user}:***" if password else user
    assert url.redacted() == f"{scheme}://{shown}@{netloc}:{port}/{database}"


@given(parts=st.lists(st.text(string.ascii_letters + " %?#&=-", min_size=1), min_size=1,
                      max_size=3), database=names)  # fmt: skip
def test_an_embedded_url_survives_reveal_and_parse(parts: list[str], database: str) -> None:
    url = StoreURL.embedded_at(Path("/", *parts), database)
    assert parse_store_url(url.reveal()) == url


@pytest.mark.parametrize(
    "text", ["postgres://h/db", "chdb://", "http:///db", "http://h:99999/db", "http://h/bad-db"]
)
def test_settings_refuse_a_bad_store_url_when_they_are_made(text: str) -> None:
    # Parsed where the settings are read: nothing later meets the text.
    with pytest.raises(StoreURLError):
        Settings(store_url=text)
    with pytest.raises(StoreURLError, match=r"^RISKCTL_STORE: "):
        from_env({"RISKCTL_STORE": text})


def test_the_settings_hold_a_parsed_store(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).store == StoreURL.embedded_at((tmp_path / "store").resolve())
    given_url = Settings(store_url="http://u:pw@ch:8123/db").store
    assert isinstance(given_url, StoreURL) and given_url.password.reveal() == "pw"


def test_a_run_over_several_processes_refuses_the_embedded_store(
    settings: Settings, model: ScoringModel, tmp_path: Path
) -> None:
    from flows.runner import Cluster

    options = RunOptions(cluster=Cluster(0, ("127.0.0.1:1", "127.0.0.1:2")))
    with pytest.raises(StoreURLError, match="belongs to one process"):
        run_files([tmp_path / "none.jsonl"], settings, model, options)
    assert not (tmp_path / "store").exists()  # refused before the store was opened


def test_every_store_a_run_opens_comes_from_its_one_opener(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path], tmp_path: Path
) -> None:
    """The injected opener sends the run elsewhere: the schema check, the sink's writers (and
    the loan history) must all follow it, or the run meets a store without tables."""
    elsewhere = StoreURL.embedded_at(tmp_path / "elsewhere")
    asked: list[StoreURL] = []

    def redirect(url: StoreURL) -> Store:
        asked.append(url)
        return open_store(elsewhere)

    stats = run_files([events_file(300)], settings, model, RunOptions(store_factory=redirect))
    assert stats.scored == 300 and len(asked) >= 2 and set(asked) == {settings.store}
    assert query_rows(elsewhere, "SELECT count() AS n FROM scored_events") == [{"n": 300}]
    assert settings.store.path is not None and not settings.store.path.exists()
