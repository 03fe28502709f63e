"""Faults on real files: racing creators, a creator killed half-way, corrupt / not-a-ledger / directory /
read-only / locked / full-disk files, and alerts written to /dev/full: one line, exit 2, nothing lost.

File faults are SQLite's own (a PostgreSQL ledger has no file: its faults are in test_pg_faults.py); the
read-only ledger and the alerts written to a full device run on both backends."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Target
from helpers import CATALOG, OCT, accounts, calls, official, repeat

from ocrledger.errors import OcrledgerError
from ocrledger.store.ledger import Ledger

ACC = accounts(CATALOG, account=[official("u", "RecognizeIdcard")],
               plan=[{"id": "p", "account": "u", "kind": "dedicated", "api": "RecognizeIdcard", "quantity": 10,
                      "start": OCT}],
               alert=[{"account": "u", "kind": "plan_remaining", "target": "p", "threshold": 5}])


def cli(*args: str, stdout: int | None = subprocess.PIPE, user: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if user else []
    return subprocess.run([*prefix, sys.executable, "-m", "ocrledger", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def one_line(result: subprocess.CompletedProcess[str], *words: str, code: int = 2) -> None:
    assert result.returncode == code, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


def _ledger(path: Path | str) -> Ledger:
    ledger = Ledger.create(path, CATALOG, ACC)
    ledger.ingest(calls(repeat(5, "u", "RecognizeIdcard", OCT)), "b1")
    return ledger


CREATOR = """
import sys, time
from ocrledger.errors import OcrledgerError
from ocrledger.model.accounts import parse_accounts
from ocrledger.model.catalog import default_catalog
from ocrledger.store.ledger import Ledger
cat = default_catalog()
acc = parse_accounts({"account": [{"id": sys.argv[2]}]}, cat)
while time.time() < float(sys.argv[3]):
    pass
try:
    Ledger.create(sys.argv[1], cat, acc).close()
    print("won")
except OcrledgerError as exc:
    print("lost:", exc)
"""


def test_two_creators_at_once_one_wins_the_other_gets_a_clear_error(tmp_path: Path) -> None:
    for round_ in range(4):
        path = tmp_path / f"race-{round_}.sqlite"
        go = time.time() + 1.5  # both start spinning, then create at the same instant
        procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(path), name, str(go)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name in ("alice", "bob")]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        said = sorted(o.strip() for o, _ in outs)
        assert said[0].startswith("lost:") and said[1] == "won", said
        assert "already exists" in said[0] or "created a ledger here first" in said[0]
        winner = ["alice", "bob"][[o.strip() for o, _ in outs].index("won")]
        with Ledger.open(path) as ledger:  # the file holds the winner's accounts, whole
            rows = ledger.db.execute("SELECT account FROM parties").fetchall()
            assert rows == [(winner,)]
        assert [p.name for p in tmp_path.iterdir() if "creating" in p.name] == []


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


def test_a_creator_killed_half_way_leaves_nothing_that_blocks_a_retry(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CREATOR, str(path), "300000"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 60
    while not any("creating" in p.name for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # inside the creation: rows are being written under the temporary name
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert any("creating" in p.name for p in tmp_path.iterdir())  # killed while it was creating
    assert not path.exists()  # nothing under the ledger's name: the file appears complete or not at all
    with Ledger.create(path, CATALOG, ACC) as ledger:  # the retry is not blocked
        assert ledger.batches() == []
    with Ledger.open(path) as ledger:
        assert ledger.quota("u")["plans"][0]["id"] == "p"


def test_corrupt_not_a_ledger_and_directory_files_give_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    _ledger(corrupt).close()
    data = bytearray(corrupt.read_bytes())
    data[0:100] = os.urandom(100)  # the header is gone
    corrupt.write_bytes(bytes(data))
    with pytest.raises(OcrledgerError, match="corrupt or not an ocrledger ledger"):
        Ledger.open(corrupt)
    one_line(cli("bill", "--db", str(corrupt), "--month", "2026-10"), "corrupt")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(OcrledgerError, match="not an ocrledger ledger"):
        Ledger.open(other)
    one_line(cli("ingest", "--db", str(other), "--calls", str(other)), "not an ocrledger ledger")
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    one_line(cli("bill", "--db", str(folder), "--month", "2026-10"), "is a directory")
    with pytest.raises(OcrledgerError, match="is a directory"):
        Ledger.create(folder, CATALOG)


def test_a_read_only_ledger_answers_bills_and_refuses_changes_in_one_line(ledger_target: Target) -> None:
    path = ledger_target.new(persistent=True)
    _ledger(path).close()
    with Ledger.open(path, readonly=True) as ledger:
        assert ledger.bills("2026-10")[0].line("RecognizeIdcard").free == 5
        with pytest.raises(OcrledgerError, match="read-only"):
            ledger.ingest(calls(repeat(1, "u", "RecognizeIdcard", OCT, prefix="x")), "b2")
        with pytest.raises(OcrledgerError, match="read-only"):
            ledger.add_plan(id="q", account="u", kind="dedicated", api="RecognizeIdcard", quantity=1, start=OCT)


def _nobody_runs_python() -> bool:
    """Root can make a file another user cannot write, and that user can run this Python and package."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                           "import ocrledger"], capture_output=True, timeout=120)
    return done.returncode == 0


@pytest.mark.skipif(not _nobody_runs_python(), reason="needs root and a Python that uid 65534 can run")
def test_a_file_in_a_read_only_folder_is_read_by_another_user(tmp_path: Path) -> None:
    # a real read-only file: owned by root, mode 444, in a folder of mode 555, read by uid 65534
    folder = Path(tempfile.mkdtemp(prefix="ro-ledger-"))
    try:
        path = folder / "l.sqlite"
        _ledger(path).close()
        path.chmod(0o444)
        folder.chmod(0o555)
        text = cli("bill", "--db", str(path), "--month", "2026-10", user=True)
        assert text.returncode == 0, text.stderr
        assert json.loads(text.stdout)[0]["lines"][0]["free"] == 5
        log = cli("log", "--db", str(path), "--account", "u", user=True)
        assert log.returncode == 0 and len(json.loads(log.stdout)["rows"]) == 5
        one_line(cli("close", "--db", str(path), "--month", "2026-10", user=True), "read-only")
        assert cli("alerts", "--db", str(path), "--peek", user=True).returncode == 0
        one_line(cli("alerts", "--db", str(path), "--ack", "1", user=True), "read-only")
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_a_ledger_locked_too_long_gives_one_line_and_works_once_free(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    _ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    ledger = Ledger.open(path, timeout=0.2)
    batch = calls(repeat(3, "u", "RecognizeIdcard", OCT, prefix="x"))
    with pytest.raises(OcrledgerError, match="locked by another process for longer than 0.2 s"):
        ledger.ingest(batch, "b2")
    assert ledger.bills("2026-10")[0].line("RecognizeIdcard").calls == 5  # readers are not blocked
    holder.execute("ROLLBACK")
    holder.close()
    assert not ledger.ingest(batch, "b2").replayed
    assert ledger.bills("2026-10")[0].line("RecognizeIdcard").calls == 8
    ledger.close()


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real file system of 1 MiB (tmpfs), mounted for the test; skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_loses_no_committed_batch_and_works_again_once_space_is_freed(tiny_disk: Path) -> None:
    path = tiny_disk / "l.sqlite"
    ledger = _ledger(path)
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # take every byte left
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    big = calls(repeat(3000, "u", "RecognizeIdcard", "2026-10-02T00:00:00+08:00", prefix="big"))
    with pytest.raises(OcrledgerError, match="disk is full") as err:
        ledger.ingest(big, "big")
    assert "\n" not in str(err.value)
    assert ledger.batches() == ["b1"]  # nothing half-applied, the committed batch intact
    assert ledger.bills("2026-10")[0].line("RecognizeIdcard").calls == 5
    one_line(cli("ingest", "--db", str(path), "--calls", str(_csv(tiny_disk.parent / "big.csv", big)),
                 "--batch-id", "big"), "disk is full")
    filler.unlink()  # space freed: the same batch goes in
    assert not ledger.ingest(big, "big").replayed
    assert ledger.bills("2026-10")[0].line("RecognizeIdcard").calls == 3005
    ledger.close()


def _csv(path: Path, cols: dict) -> Path:  # type: ignore[type-arg]
    names = ["record_id", "account", "api", "ts", "success"]
    with open(path, "w") as fh:
        fh.write(",".join(names) + "\n")
        for row in zip(*(cols[n].tolist() for n in names)):
            fh.write(",".join(map(str, row)) + "\n")
    return path


def test_alerts_written_to_a_full_device_are_not_acknowledged(ledger_target: Target) -> None:
    path = ledger_target.new(persistent=True)
    ledger = _ledger(path)
    # the plan p (10) pays after the 200 free calls: after its 6th call 4 are left (< 5), after its 10th none
    ledger.ingest(calls(repeat(210, "u", "RecognizeIdcard", "2026-10-03T00:00:00+08:00", prefix="y")), "b2")
    ledger.close()
    with open("/dev/full", "w") as full:
        # an output that cannot be written whole: exit 1, naming it (the command line's rule, issue 15)
        one_line(cli("alerts", "--db", str(path), stdout=full), "<stdout>: cannot write", code=1)
    shown = cli("alerts", "--db", str(path))  # nothing was lost: both still there, now delivered
    assert shown.returncode == 0
    got = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(a["threshold"], a["record_id"]) for a in got] == [("5", "y0000200"), ("0", "y0000204")]
    assert cli("alerts", "--db", str(path)).stdout == ""
