"""Real processes on a real SQLite file: a writer killed with SIGKILL mid-ingest, and readers while it writes."""
from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ledger_scenarios import charge_order, scenario, take

from ocrledger.engine.rate import rate
from ocrledger.store.ledger import Ledger

WRITER = """
import sys
from ocrledger.store.ledger import Ledger
ledger = Ledger.open(sys.argv[1])
for path in sys.argv[2:]:
    ledger.ingest(path, path.rsplit('/', 1)[-1])
"""


def _write_batches(folder: Path, data: dict[str, np.ndarray], n_batches: int) -> list[Path]:
    order = charge_order(data)
    paths = []
    for k, rows in enumerate(np.array_split(order, n_batches)):
        part = take(data, rows)
        path = folder / f"batch-{k:03d}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(part))
            w.writerows(zip(*(part[c].tolist() for c in part)))
        paths.append(path)
    return paths


def _bills(ledger: Ledger) -> list[str]:
    bills = [b for month in ("2026-10", "2026-11") for b in ledger.bills(month)]
    return [b.to_json() for b in sorted(bills, key=lambda b: b.key)]


def test_sigkill_at_random_moments_loses_no_batch_and_charges_none_twice(tmp_path: Path) -> None:
    cat, acc, data = scenario(11, n_calls=6000)
    paths = _write_batches(tmp_path, data, 30)
    # Time one uninterrupted writer on a copy. Each kill then lands at a random moment inside a
    # random batch still to commit: once the writer has committed a random number of the batches
    # left, a random fraction of one batch's time later (a later writer replays the committed ones).
    reference_db = tmp_path / "uninterrupted.sqlite"
    Ledger.create(reference_db, cat, acc).close_connection()
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", WRITER, str(reference_db)], check=True)
    startup = time.monotonic() - started
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", WRITER, str(reference_db), *map(str, paths)], check=True)
    per_batch = max(time.monotonic() - started - startup, 0.03) / len(paths)
    db = tmp_path / "ledger.sqlite"
    Ledger.create(db, cat, acc).close_connection()

    def committed() -> int:
        reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
        try:
            return int(reader.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
        finally:
            reader.close()

    rng = random.Random(5)
    kills = 0
    for _ in range(12):
        done_before = committed()
        if done_before == len(paths):
            break
        target = done_before + rng.randrange(min(3, len(paths) - done_before))  # killed while ingesting this one
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), *map(str, paths)])
        while proc.poll() is None and committed() < target:
            time.sleep(0.002)
        time.sleep((startup if target == done_before else 0.0) + rng.uniform(0.0, 0.8) * per_batch)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        # After every kill: the committed batches are a prefix of those sent, applied whole.
        with Ledger.open(db) as ledger:
            done = ledger.batches()
            assert done == [p.name for p in paths[: len(done)]]
            order = charge_order(data)
            sent = np.concatenate([np.array_split(order, 30)[k] for k in range(len(done))] or [np.empty(0, int)])
            want = rate(take(data, sent), cat, acc).bills if len(sent) else []
            assert _bills(ledger) == [b.to_json() for b in want]
    assert kills >= 3, "the writer finished before it could be killed; make the batches larger"
    # Re-send everything: committed batches are no-ops, the rest are applied.
    subprocess.run([sys.executable, "-c", WRITER, str(db), *map(str, paths)], check=True)
    with Ledger.open(db) as ledger, Ledger.open(reference_db) as reference:
        assert ledger.batches() == [p.name for p in paths]
        assert _bills(ledger) == [b.to_json() for b in rate(data, cat, acc).bills] == _bills(reference)


def test_readers_in_other_processes_see_only_whole_committed_batches(tmp_path: Path) -> None:
    cat, acc, data = scenario(12, n_calls=3000)
    paths = _write_batches(tmp_path, data, 20)
    db = tmp_path / "ledger.sqlite"
    Ledger.create(db, cat, acc).close_connection()
    order = charge_order(data)
    parts = np.array_split(order, 20)
    prefix_bills = {}
    for k in range(21):
        sent = np.concatenate(parts[:k]) if k else np.empty(0, dtype=int)
        bills = rate(take(data, sent), cat, acc).bills if k else []
        prefix_bills[k] = {m: [b.to_json() for b in bills if b.period == m] for m in ("2026-10", "2026-11")}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), *map(str, paths)])
    seen = set()
    with Ledger.open(db) as reader:
        while True:
            finished = writer.poll() is not None
            for month in ("2026-10", "2026-11"):
                before = len(reader.batches())
                bills = [b.to_json() for b in reader.bills(month)]  # one read snapshot
                after = len(reader.batches())
                # the snapshot holds k whole batches for some k between the two counts
                assert any(bills == prefix_bills[k][month] for k in range(before, after + 1))
                seen.add(before)
            if finished:
                break
    assert writer.returncode == 0
    assert max(seen) == 20 and len(seen) >= 2
