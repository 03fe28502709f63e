"""Faults of a PostgreSQL ledger on a real server: a lost connection, a newer schema, a held lock, racing and killed
creators, NUL ids, replays sent at the same instant, schemas side by side, and the CLI's one line."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pg_server
import psycopg
import pytest
from helpers import CATALOG, OCT, accounts, calls, ms, official, repeat

from ocrledger.errors import ConnectionLostError, OcrledgerError
from ocrledger.store.backends import exists
from ocrledger.store.ledger import Ledger
from ocrledger.store.postgres_sql import split_url

pytestmark = pytest.mark.usefixtures("pg_session")
ACC = accounts(CATALOG, account=[official("u", "RecognizeIdcard"), official("w", "RecognizeIdcard")])
OCT_MS = ms(OCT)


def _admin(url: str) -> psycopg.Connection:
    conninfo, schema, _ = split_url(url)
    db = psycopg.connect(conninfo, autocommit=True)
    if schema:
        db.execute("SELECT set_config('search_path', %s, false)", (schema,))
    return db


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300)


def test_a_lost_connection_is_one_line_and_the_batch_can_be_sent_again() -> None:
    url = pg_server.server().url()
    ledger = Ledger.create(url, CATALOG, ACC)
    ledger.ingest(calls(repeat(5, "u", "RecognizeIdcard", OCT)), "b1")
    with _admin(url) as admin:  # the server ends the ledger's backend, as a restart or a network cut would
        pid = ledger.db.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    batch = calls(repeat(3, "u", "RecognizeIdcard", OCT, prefix="x"))
    with pytest.raises(ConnectionLostError, match="connection to the PostgreSQL server failed") as err:
        ledger.ingest(batch, "b2")
    assert "\n" not in str(err.value) and isinstance(err.value, OcrledgerError)
    ledger.close()
    with Ledger.open(url) as again:  # nothing of b2 was applied; sent again, it goes in once
        assert again.batches() == ["b1"]
        assert not again.ingest(batch, "b2").replayed
        assert again.ingest(batch, "b2").replayed
        assert again.bills("2026-10", "u")[0].line("RecognizeIdcard").calls == 8


def test_a_newer_or_missing_schema_version_is_refused_in_one_line() -> None:
    url = pg_server.server().url()
    Ledger.create(url, CATALOG, ACC).close()
    with _admin(url) as admin:
        admin.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    with pytest.raises(OcrledgerError, match="schema version 4; this ocrledger knows version 3 only"):
        Ledger.open(url)
    done = _cli("bill", "--db", url, "--month", "2026-10")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "schema version 4" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(OcrledgerError, match="no ledger here"):
        Ledger.open(pg_server.server().url())


def test_a_ledger_locked_too_long_gives_one_line_and_readers_are_not_blocked() -> None:
    url = pg_server.server().url()
    Ledger.create(url, CATALOG, ACC).close()
    ledger = Ledger.open(url, timeout=0.2)
    ledger.ingest(calls(repeat(5, "u", "RecognizeIdcard", OCT)), "b1")
    holder = Ledger.open(url)
    with holder.store.write(exclusive=True):  # a close or a change of the setup in flight holds the ledger
        with pytest.raises(OcrledgerError, match="locked by another process for longer than 0.2 s"):
            ledger.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT, prefix="x")), "b2")
        assert ledger.bills("2026-10", "u")[0].line("RecognizeIdcard").calls == 5  # MVCC: reads do not wait
    assert not ledger.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT, prefix="x")), "b2").replayed
    holder.close()
    ledger.close()


def test_a_batch_on_one_account_does_not_wait_for_a_batch_on_another() -> None:
    url = pg_server.server().url()
    Ledger.create(url, CATALOG, ACC).close()
    first, second = Ledger.open(url, timeout=5), Ledger.open(url, timeout=0.5)
    with first.store.write():  # a batch of u in flight: its party locks held until commit
        first.store.lock_parties([("u", "official")])
        second.ingest(calls(repeat(3, "w", "RecognizeIdcard", OCT, prefix="w")), "bw")  # w: goes through
        with pytest.raises(OcrledgerError, match="locked by another process"):
            second.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT, prefix="u")), "bu")  # u: waits
    assert not second.ingest(calls(repeat(3, "u", "RecognizeIdcard", OCT, prefix="u")), "bu").replayed
    first.close()
    second.close()


def test_one_batch_id_sent_by_two_writers_at_the_same_instant_is_applied_once() -> None:
    url = pg_server.server().url()
    Ledger.create(url, CATALOG, ACC).close()
    writers = [Ledger.open(url) for _ in range(4)]
    batch = calls(repeat(50, "u", "RecognizeIdcard", OCT))
    go = threading.Barrier(len(writers))
    results: list[bool] = []

    def send(ledger: Ledger) -> None:
        go.wait()
        results.append(ledger.ingest(batch, "same").replayed)

    threads = [threading.Thread(target=send, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True, True, True]
    assert writers[0].bills("2026-10", "u")[0].line("RecognizeIdcard").calls == 50
    for w in writers:
        w.close()


def test_one_record_id_in_two_concurrent_batches_of_different_accounts_is_charged_once() -> None:
    # batches of u and w do not lock each other, but share the channel's record ids: the later commit finds
    # the record taken (a unique-key conflict), is rolled back whole and rated again, now as a duplicate
    url = pg_server.server().url()
    Ledger.create(url, CATALOG, ACC).close()
    a, b = Ledger.open(url), Ledger.open(url)
    shared = [("same", "u", "RecognizeIdcard", OCT, 1)]
    held = threading.Event()

    def slow() -> None:
        with a.store.write():  # a's batch holds the record 'same' uncommitted for a moment
            a.store.add_records([("official", "same", "held")])
            held.set()
            time.sleep(0.5)
        # committed: the record is taken by batch 'held'

    t = threading.Thread(target=slow)
    t.start()
    held.wait()
    res = b.ingest(calls([("same", "w", "RecognizeIdcard", OCT, 1)]), "bw")  # waits for a, then conflicts, retries
    t.join()
    assert res.duplicates == 1
    assert b.committed_by("same") == "held"
    assert a.ingest(calls(shared), "bu").duplicates == 1
    a.close()
    b.close()


def test_ids_with_a_nul_character_are_refused_clearly() -> None:
    url = pg_server.server().url()
    with Ledger.create(url, CATALOG, ACC) as ledger:
        batch = calls([("a\0b", "u", "RecognizeIdcard", OCT, 1)])
        batch["record_id"] = np.array(["a\0b"], dtype=object)  # a str array would drop the NUL and what follows
        with pytest.raises(OcrledgerError, match="NUL character") as err:
            ledger.ingest(batch, "nul")
        assert "\n" not in str(err.value)
        assert ledger.batches() == []
        assert not ledger.ingest(calls([("ab", "u", "RecognizeIdcard", OCT, 1)]), "ok").replayed


def test_two_creators_at_once_one_wins_and_schemas_keep_ledgers_apart() -> None:
    server = pg_server.server()
    url = server.url()
    errors: list[str] = []
    go = threading.Barrier(2)

    def create() -> None:
        go.wait()
        try:
            Ledger.create(url, CATALOG, ACC).close()
        except OcrledgerError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and "already exists" in errors[0]
    other = server.url()
    with Ledger.create(other, CATALOG, accounts(CATALOG, account=[official("z", "RecognizeIdcard")])) as ledger:
        ledger.ingest(calls(repeat(2, "z", "RecognizeIdcard", OCT)), "bz")
    with Ledger.open(url) as first, Ledger.open(other) as second:
        assert first.batches() == [] and second.batches() == ["bz"]
        assert [b.account for b in second.bills("2026-10")] == ["z"]


KILLED_CREATOR = """
import sys
from ocrledger.model.accounts import parse_accounts
from ocrledger.model.catalog import default_catalog
from ocrledger.store.ledger import Ledger
cat = default_catalog()
acc = parse_accounts({"account": [{"id": f"a{k}"} for k in range(int(sys.argv[2]))]}, cat)
print("ready", flush=True)
Ledger.create(sys.argv[1], cat, acc)
"""


def test_a_creator_killed_half_way_leaves_nothing_that_blocks_a_retry() -> None:
    url = pg_server.server().url()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CREATOR, url, "100000"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    probe = _admin(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until it is writing its rows (its transaction is open)
        rows = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
                             "OR (state = 'active' AND query ILIKE 'INSERT INTO parties%')").fetchone()
        if rows[0]:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    probe.close()
    assert not exists(url)  # one transaction: nothing of the half-made ledger is visible
    with Ledger.create(url, CATALOG, ACC) as ledger:
        assert ledger.batches() == []


def test_the_command_line_on_a_url_creates_ingests_and_bills(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = pg_server.server().url()
    data = tmp_path / "b.csv"
    data.write_text("record_id,account,api,ts,success\n" + "".join(
        f"r{k},u,RecognizeIdcard,2026-10-02T00:00:00+08:00,1\n" for k in range(3)))
    acc = tmp_path / "acc.toml"
    acc.write_text('[[account]]\nid = "u"\nactivated = { RecognizeIdcard = "2026-01-01T00:00:00+08:00" }\n')
    done = _cli("ingest", "--db", url, "--calls", str(data), "--accounts", str(acc))
    assert done.returncode == 0, done.stderr
    again = _cli("ingest", "--db", url, "--calls", str(data))
    assert again.returncode == 0 and "already committed" in again.stdout
    bill = _cli("bill", "--db", url, "--month", "2026-10")
    assert bill.returncode == 0 and '"free": 3' in bill.stdout
    bad = _cli("bill", "--db", url.replace(f"port={pg_server.server().port}", "port=1"), "--month", "2026-10")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "PostgreSQL" in bad.stderr


NO_DRIVER = """
import sys
sys.modules["psycopg"] = None  # as if ocrledger[postgres] was not installed
from ocrledger.cli.main import run
sys.argv = ["ocrledger", "bill", "--db", sys.argv[1], "--month", "2026-10"]
run()
"""


def test_without_the_driver_one_line_says_what_to_install() -> None:
    done = subprocess.run([sys.executable, "-c", NO_DRIVER, pg_server.server().url()], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "pip install 'ocrledger[postgres]'" in done.stderr


def test_without_server_binaries_the_postgres_tests_skip_locally_and_fail_under_ci(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_server, "bindir", lambda: None)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="initdb"):
        pg_server.require()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        pg_server.require()


def test_alert_ids_are_in_commit_order_so_an_acknowledgement_skips_none() -> None:
    # a batch that raised an alert and has not committed holds the alert lock: a second one waits, so a reader
    # never sees (and acknowledges) a higher id while a lower one is still to commit
    url = pg_server.server().url()
    Ledger.create(url, CATALOG, ACC).close()
    first, second, reader = Ledger.open(url), Ledger.open(url), Ledger.open(url)
    event = ("u", "official", "free_exhausted", "RecognizeIdcard", "0", "{}", "r1", OCT_MS, "free calls used up")
    done = threading.Event()

    def later() -> None:
        with second.store.write():
            second.store.add_alert_event(("w", *event[1:]))
        done.set()

    with first.store.write():
        first.store.add_alert_event(event)
        t = threading.Thread(target=later)
        t.start()
        assert not done.wait(0.5)  # the second batch's alert waits for the first commit
        assert reader.alerts() == []
    t.join()
    assert [(a["id"], a["account"]) for a in reader.alerts()] == [(1, "u"), (2, "w")]
    for ledger in (first, second, reader):
        ledger.close()


def test_ids_are_exact_strings_quotes_backslashes_braces_spaces_and_unicode() -> None:
    weird = ['a"b', "c\\d", "{e,f}", " g ", "h\tI\nj", "", "NULL", "k'l", "\u00e9\u4e2d\U0001f600", "m\\\"n"]
    url = pg_server.server().url()
    with Ledger.create(url, CATALOG, ACC) as ledger:
        batch = calls([(r or "x", "u", "RecognizeIdcard", OCT, 1) for r in weird])
        batch["record_id"] = np.array([r or "x" for r in weird], dtype=object)
        ledger.ingest(batch, "b1")
        again = ledger.ingest(batch, "b2")  # every id found again, exactly: all duplicates
        assert again.duplicates == len(weird)
        assert {ledger.committed_by(r or "x") for r in weird} == {"b1"}
        assert ledger.committed_by("a") is None and ledger.committed_by('a"b ') is None
