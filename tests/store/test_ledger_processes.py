"""Real processes on a real ledger: a writer killed with SIGKILL mid-ingest (SQLite: its reader is a plain sqlite3
connection), readers while it writes, and four workers killed and restarted on overlapping accounts (both)."""
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
from conftest import Target
from ledger_scenarios import charge_order, commuting_scenario, scenario, take

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


def test_readers_in_other_processes_see_only_whole_committed_batches(ledger_target: Target, tmp_path: Path) -> None:
    cat, acc, data = scenario(12, n_calls=3000)
    paths = _write_batches(tmp_path, data, 20)
    db = ledger_target.new(persistent=True)
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


WORKER = """
import sys
from ocrledger.store.ledger import Ledger
ledger = Ledger.open(sys.argv[1])
for path in sys.argv[2:]:
    ledger.ingest(path, path.rsplit('/', 1)[-1])
ledger.close()
"""


def _csv(path: Path, part: dict[str, np.ndarray]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(part))
        w.writerows(zip(*(part[c].tolist() for c in part)))
    return path


def test_four_workers_killed_and_restarted_on_overlapping_accounts_equal_one_sequential_ingest(
        ledger_target: Target, tmp_path: Path) -> None:
    # 48 batches, 12 per worker. Worker w owns accounts u(2w) and u(2w+1); every batch also has calls of the
    # accounts u8, u9 that all workers share, some of them only u9: batches wait for one another on the shared
    # parties (their counters would be lost updates otherwise), the rest of a batch's work runs side by side. Workers are SIGKILLed at random moments and restarted; at the end every batch is
    # sent again. The scenario's bills do not depend on the commit order (checked below), so the ledger must
    # equal one sequential ingest byte for byte whatever the interleaving.
    cat, acc, data = commuting_scenario(21, n_accounts=10, n_calls=16000)
    party = np.array([int(a[1:]) for a in data["account"].tolist()])
    owner = np.where(party < 8, party // 2, -1)
    rng = random.Random(3)
    shared_rows = np.flatnonzero(owner < 0)
    with_u8 = [b for b in range(48) if b % 12 % 3]  # a third of the batches have u9's calls but none of u8's
    shared_to = np.array([rng.randrange(48) if party[r] == 9 else rng.choice(with_u8) for r in shared_rows.tolist()])
    lists: list[list[Path]] = [[] for _ in range(4)]
    parts: dict[str, np.ndarray] = {}
    for w in range(4):
        mine = np.flatnonzero(owner == w)
        for j, rows in enumerate(np.array_split(mine, 12)):
            rows = np.concatenate([rows, shared_rows[shared_to == w * 12 + j]])
            name = f"w{w}-{j:02d}.csv"
            parts[name] = rows
            lists[w].append(_csv(tmp_path / name, take(data, rows)))
    everything = [p for ps in zip(*lists) for p in ps]
    forward = Ledger.create(":memory:", cat, acc)
    backward = Ledger.create(":memory:", cat, acc)
    for p in everything:
        forward.ingest(p, p.name)
    for p in reversed(everything):
        backward.ingest(p, p.name)
    want = _bills(forward)
    assert want == _bills(backward)  # the scenario commutes: any commit order gives these bytes
    assert want == [b.to_json() for b in sorted(rate(data, cat, acc).bills, key=lambda b: b.key)]
    target = ledger_target.new(persistent=True)
    Ledger.create(target, cat, acc).close()

    def check() -> int:
        with Ledger.open(target) as ledger:
            done = ledger.batches()
            sent = np.concatenate([parts[b] for b in done]) if done else np.empty(0, dtype=int)
            got = _bills(ledger)
        # what is committed is whole batches: the bills of exactly those calls
        assert got == ([b.to_json() for b in sorted(rate(take(data, sent), cat, acc).bills, key=lambda b: b.key)]
                       if len(sent) else [])
        return len(done)

    kills = 0
    reader = Ledger.open(target)
    for _ in range(8):
        before = len(reader.batches())
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, target, *map(str, ps)]) for ps in lists]
        while len(reader.batches()) == before and any(p.poll() is None for p in procs):
            time.sleep(0.005)  # until the workers are past their start-up and committing
        deadline = time.monotonic() + rng.uniform(0.0, 0.6)
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.005)
        for p in procs:
            if p.poll() is None and rng.random() < 0.75:
                os.kill(p.pid, signal.SIGKILL)
                kills += 1
        for p in procs:
            p.wait(timeout=600)
            assert p.returncode in (0, -signal.SIGKILL)
        if check() == len(everything):
            break
    reader.close()
    assert kills >= 2, "the workers finished before they could be killed; make the batches larger"
    final = [subprocess.Popen([sys.executable, "-c", WORKER, target, *map(str, ps)]) for ps in lists]
    assert [p.wait(timeout=600) for p in final] == [0, 0, 0, 0]
    assert check() == len(everything)
    with Ledger.open(target) as ledger:
        assert sorted(ledger.batches()) == sorted(p.name for p in everything)
        assert _bills(ledger) == want
