"""The rerater's in-memory pass (``_fastrerate``) against its spill passes and ``rate``, and its compiled helpers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, api, catalog, ms, official, overflow_setup

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ocrledger.codes import Source, Status  # noqa: E402
from ocrledger.engine import usage as usage_module  # noqa: E402
from ocrledger.engine.qps import addon_index, qps_lines, second_counts  # noqa: E402
from ocrledger.engine.rate import rate  # noqa: E402
from ocrledger.kernel.contract import Batch, Outcomes  # noqa: E402
from ocrledger.model.bills import bills_to_json  # noqa: E402
from ocrledger.rerate import calls_file  # noqa: E402
from ocrledger.rerate import memory as fast  # noqa: E402
from ocrledger.rerate.rerater import rerate  # noqa: E402

needs_core = pytest.mark.skipif(not fast.available(), reason="compiled helpers not built")
core = fast._core

APIS = ("RecognizeIdcard", "RecognizeGeneral", "VerifyVATInvoice", "RecognizeAdvanced")


def scenario(seed: int, n: int = 3_000, *, volume: bool = False) -> tuple:
    """Random calls over two months: ties on instants, copies across accounts and channels, failures, QPS bursts."""
    rng = np.random.default_rng(seed)
    cat = CATALOG
    codes = APIS
    if volume:
        cat = catalog([api("V", free_monthly=5, tier_mode="volume", qps=1,
                           tiers=[{"upto": 50, "price": "0.30"}, {"upto": 400, "price": "0.20"}, {"price": "0.10"}]),
                       api("G", free_monthly=0, qps=0)])
        codes = ("V", "G")
    acc = accounts(
        cat,
        account=[official("a", *codes), official("b", *codes[:2]), official("c", codes[0]),
                 {"id": "m", "channel": "marketplace"}],
        plan=[
            {"id": "d1", "account": "a", "kind": "dedicated", "api": codes[1], "quantity": 40,
             "start": "2026-09-15T00:00:00+08:00"},
            {"id": "s1", "account": "b", "kind": "shared", "quantity": 300, "start": "2026-09-01T00:00:00+08:00"},
            {"id": "s2", "account": "m", "channel": "marketplace", "kind": "shared", "quantity": 200,
             "start": "2026-09-01T00:00:00+08:00"},
        ],
    )
    t0, t1 = ms("2026-09-20T00:00:00+08:00"), ms("2026-11-01T00:00:00+08:00")
    ts = rng.integers(t0, t1, n)
    tied = rng.random(n) < 0.2  # exact ties on a few instants
    ts[tied] = rng.choice(ts[:20], int(tied.sum()))
    burst = rng.random(n) < 0.15  # many calls in a few seconds: QPS peaks and exact ties
    ts[burst] = ms("2026-10-03T00:00:00+08:00") + rng.integers(0, 3, int(burst.sum())) * 500
    who = rng.choice(["a", "b", "c", "m", "ghost"], n, p=[0.4, 0.25, 0.15, 0.15, 0.05])
    rid = np.array([f"r{k:05d}" for k in rng.integers(0, int(n * 0.9), n)])  # ~10% copies
    cols = {
        "record_id": rid.tolist(),
        "account": who.tolist(),
        "api": rng.choice(codes, n).tolist(),
        "ts": ts,
        "success": (rng.random(n) > 0.05).astype(np.int8),
        "channel": np.where(who == "m", "marketplace", "official").tolist(),
    }
    return cat, acc, pa.table(cols)


def calls_rows(path: Path) -> list[tuple]:
    t = pq.read_table(path)
    return list(zip(*(t.column(c).to_pylist() for c in t.column_names)))


@needs_core
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("volume", [False, True])
def test_in_memory_pass_equals_spill_passes_and_rate(tmp_path: Path, seed: int, volume: bool) -> None:
    cat, acc, t = scenario(seed, volume=volume)
    for month in (None, "2026-10"):
        fast_out, slow_out = tmp_path / f"fast-{month}", tmp_path / f"slow-{month}"
        quick = rerate(t, cat, acc, month=month, out=fast_out)
        slow = rerate(t, cat, acc, month=month, out=slow_out, chunk_rows=211, bucket_rows=700)
        assert quick.summary["buckets"] == {"record_id": 1, "time": 1}
        assert slow.summary["buckets"]["record_id"] > 1 and slow.summary["buckets"]["time"] > 1
        assert (fast_out / "bills.json").read_bytes() == (slow_out / "bills.json").read_bytes()
        assert (fast_out / "bills.txt").read_bytes() == (slow_out / "bills.txt").read_bytes()
        assert calls_rows(fast_out / "calls.parquet") == calls_rows(slow_out / "calls.parquet")
        schema = pq.read_schema(fast_out / "calls.parquet")
        assert schema == pq.read_schema(slow_out / "calls.parquet")
        assert [f.name for f in schema if f.nullable] == ["source", "plan", "tier"]  # the others always hold a value
        a, b = dict(quick.summary), dict(slow.summary)
        for key in ("buckets", "seconds", "calls_per_second", "peak_rss_mb"):
            a.pop(key), b.pop(key)
        assert a == b
        if month is None:
            cols = {c: np.array(t.column(c).to_pylist()) for c in t.column_names}
            cols["ts"] = cols["ts"].astype(np.int64)
            assert bills_to_json(quick.bills) == bills_to_json(rate(cols, cat, acc).bills)


@needs_core
def test_in_memory_pass_is_used_up_to_memory_rows_only(tmp_path: Path) -> None:
    cat, acc, t = scenario(4, 500)
    assert rerate(t, cat, acc, memory_rows=500).summary["buckets"] == {"record_id": 1, "time": 1}
    spilled = rerate(t, cat, acc, memory_rows=499, bucket_rows=200, tmp_dir=tmp_path)
    assert spilled.summary["buckets"]["record_id"] > 1
    assert bills_to_json(spilled.bills) == bills_to_json(rerate(t, cat, acc).bills)


def test_empty_input_in_memory(tmp_path: Path) -> None:
    cat, acc, t = scenario(5, 10)
    result = rerate(t.slice(0, 0), cat, acc, out=tmp_path)
    assert result.bills == [] and result.summary["calls"] == 0
    assert pq.read_table(tmp_path / "calls.parquet").num_rows == 0


@needs_core
def test_bills_json_equals_bills_to_json() -> None:
    cat, acc, t = scenario(6)
    bills = rerate(t, cat, acc).bills
    for chunk in (2_000, 1):  # one piece, and a piece per bill
        assert b"".join(fast.bills_json_pieces(bills, chunk)).decode("utf-8") == bills_to_json(bills)
    assert b"".join(fast.bills_json_pieces([])) == b"[]"


@needs_core
def test_json_reindent_matches_json_dumps() -> None:
    rng = np.random.default_rng(7)
    texts = ["", "a", 'q"uote', "back\\slash", "comma, colon: [brackets] {braces}", "tab\tnew\nline", "é中文", "\x01"]

    def value(depth: int) -> object:
        k = int(rng.integers(0, 7 if depth < 4 else 4))
        if k == 0:
            return int(rng.integers(-10**12, 10**12))
        if k == 1:
            return texts[int(rng.integers(0, len(texts)))]
        if k == 2:
            return None
        if k == 3:
            return bool(rng.integers(0, 2))
        if k == 4:
            return [value(depth + 1) for _ in range(int(rng.integers(0, 4)))]
        return {texts[int(rng.integers(0, len(texts)))] + str(i): value(depth + 1) for i in range(int(rng.integers(0, 4)))}

    for _ in range(300):
        obj = value(0)
        compact = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        for indent in (0, 2, 4):
            assert bytes(core.json_reindent(compact, indent)) == json.dumps(obj, ensure_ascii=False,
                                                                            indent=indent).encode("utf-8")


@needs_core
@pytest.mark.parametrize("partitioned_from", [0, 1 << 16], ids=["partitioned", "whole"])
def test_radix_argsort_is_a_stable_argsort(partitioned_from: int) -> None:
    rng = np.random.default_rng(8)
    for n, span in ((0, 1), (1, 1), (1000, 3), (50_000, 2**32 - 1), (20_000, 2**21), (300_000, 2**32 - 1),
                    (300_000, 2**12), (200_000, 1)):
        ts = rng.integers(0, span, n, dtype=np.int64) + 1_700_000_000_000
        if n > 100_000 and span > 2:  # skewed: most calls in one small stretch
            ts[: n // 2] = 1_700_000_000_000 + rng.integers(0, 5_000, n // 2)
        order, st = np.empty(n, np.int64), np.empty(n, np.int64)
        core.radix_argsort(ts, 1_700_000_000_000, order, st, partitioned_from)
        assert (order == np.argsort(ts, kind="stable")).all()
        assert (st == np.sort(ts)).all()
    with pytest.raises(ValueError):
        core.radix_argsort(np.array([5, 1], np.int64), 2, np.empty(2, np.int64), np.empty(2, np.int64))


@needs_core
@pytest.mark.parametrize("kind", ["string", "large_string"])
@pytest.mark.parametrize("partitioned_from", [0, 1 << 16], ids=["partitioned", "one-table"])
def test_string_repeats_and_gather_strings(kind: str, partitioned_from: int) -> None:
    rng = np.random.default_rng(9)
    words = ["", "x", "abcdefgh", "abcdefghi", "a much longer record id than sixteen bytes", "é", "abcdefgh "]
    values = [words[k] + (str(v) if rng.random() < 0.5 else "") for k, v in
              zip(rng.integers(0, len(words), 5_000), rng.integers(0, 300, 5_000))]
    arr = pa.array(values, getattr(pa, kind)()).slice(3)  # a non-zero offset
    values = values[3:]
    tag = rng.integers(0, 2, len(values)).astype(np.int8)
    offsets, data = fast.string_buffers(arr)
    assert offsets.dtype == (np.int64 if kind == "large_string" else np.int32)  # read as they are, no copy
    later, first_of = np.full(len(values), -7, np.int32), np.full(len(values), -7, np.int32)
    distinct, m = core.string_repeats(offsets, data, tag, later, first_of, partitioned_from)
    keys = list(zip(values, tag.tolist()))
    assert distinct == len(set(keys))
    first: dict = {}
    seen_before = [(i, first[k]) for i, k in enumerate(keys) if first.setdefault(k, i) != i]
    assert sorted(zip(later[:m].tolist(), first_of[:m].tolist())) == seen_before  # any order
    assert (later[m:] == -7).all() and (first_of[m:] == -7).all()  # nothing written past the listed rows
    perm = rng.permutation(len(values)).astype(np.int64)
    out_off = np.empty(len(values) + 1, np.int32)
    total = core.string_lengths(offsets, perm, out_off)
    out_data = np.empty(total + 16, np.uint8)
    assert core.gather_strings(offsets, data, perm, out_off, out_data) == total
    got = pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(out_off), pa.py_buffer(out_data)])
    assert got.to_pylist() == [values[i] for i in perm.tolist()]


@needs_core
def test_gather_calls_packs_and_unpacks_every_value() -> None:
    rng = np.random.default_rng(4)
    n = 5_000
    party = rng.integers(-2**31, 2**31, n).astype(np.int32)
    api = rng.integers(0, 2**24, n).astype(np.int32)
    ok, dup = rng.integers(0, 2, n).astype(np.int8), rng.integers(0, 2, n).astype(np.int8)
    order = rng.integers(0, n, 2 * n).astype(np.int64)  # repeats allowed
    outs = np.empty(2 * n, np.int32), np.empty(2 * n, np.int32), np.empty(2 * n, np.int8), np.empty(2 * n, np.int8)
    core.gather_calls(order, party, api, ok, dup, *outs)
    for got, col in zip(outs, (party, api, ok, dup)):
        assert np.array_equal(got, col[order])
    with pytest.raises(IndexError):
        core.gather_calls(order, party, np.full(n, 2**24, np.int32), ok, dup, *outs)


def test_distinct_values_compiled_and_numpy() -> None:
    values = np.array([3, 0, 3, 5], np.int32)
    for given in (values, values.astype(np.int64)):  # int64 takes the numpy path
        assert calls_file.distinct_values(given, 7).tolist() == [0, 3, 5]
    if core is not None:
        seen = np.zeros(7, np.uint8)
        core.flag_values(values, seen)
        assert seen.tolist() == [1, 0, 0, 1, 0, 1, 0]
        with pytest.raises(IndexError):
            core.flag_values(np.array([7], np.int32), np.zeros(7, np.uint8))


@needs_core
@pytest.mark.parametrize("kind", ["string", "large_string"])
def test_gather_text_permutation_repeats_and_empty(kind: str) -> None:
    rng = np.random.default_rng(5)
    values = [("x" * int(k)) + str(i) for i, k in enumerate(rng.integers(0, 30, 2_000))]
    arr = pa.array(values, getattr(pa, kind)()).slice(1)
    values = values[1:]
    offsets, data = fast.string_buffers(arr)
    for perm in (rng.permutation(len(values)),  # one pass: every string once, total known
                 rng.integers(0, len(values), len(values)),  # same count, some twice: sized first
                 rng.integers(0, len(values), 17), np.zeros(0)):
        got = fast.gather_text(offsets, data, perm.astype(np.int64))
        assert got.to_pylist() == [values[i] for i in perm.astype(np.int64).tolist()]


@needs_core
def test_string_repeats_over_many_partitions() -> None:
    # 150,000 ids (8 partitions of the hash), a few hundred repeated with either tag
    rng = np.random.default_rng(8)
    n = 150_000
    values = [f"rid-{v}" for v in rng.integers(0, 10**9, n)]
    for i in rng.integers(0, n, 400).tolist():
        values[i] = values[int(rng.integers(0, n))]
    tag = rng.integers(0, 2, n).astype(np.int8)
    offsets, data = fast.string_buffers(pa.array(values))
    later, first_of = np.empty(n, np.int32), np.empty(n, np.int32)
    distinct, m = core.string_repeats(offsets, data, tag, later, first_of)
    keys = list(zip(values, tag.tolist()))
    first: dict = {}
    seen_before = [(i, first[k]) for i, k in enumerate(keys) if first.setdefault(k, i) != i]
    assert distinct == len(first) and m == len(seen_before) > 100
    assert sorted(zip(later[:m].tolist(), first_of[:m].tolist())) == seen_before


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_call_codes_are_the_lookups(compiled: bool) -> None:
    if compiled and core is None:
        pytest.skip("the compiled helpers are not loaded")
    codes = core.call_codes if compiled else calls_file._call_codes
    rng = np.random.default_rng(6)
    n = 3_000
    party, period = rng.integers(0, 50, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32)
    source, status = rng.integers(0, 5, n).astype(np.int8), rng.integers(0, 6, n).astype(np.int8)
    plan = rng.integers(-1, 30, n).astype(np.int32)
    party_lut, channel_of = rng.integers(0, 9, 50).astype(np.int32), rng.integers(0, 2, 50).astype(np.int32)
    period_lut, plan_lut = rng.integers(0, 9, 4).astype(np.int32), rng.integers(0, 9, 30).astype(np.int32)
    out = [np.empty(n, np.int32) for _ in range(6)]
    source_valid, plan_valid = np.empty(n, np.uint8), np.empty(n, np.uint8)
    codes(party, period, source, plan, status, party_lut, channel_of, period_lut, plan_lut, out[0], out[1],
          out[2], out[3], source_valid, out[4], plan_valid, out[5])
    assert np.array_equal(out[0], party_lut[party]) and np.array_equal(out[1], channel_of[party])
    assert np.array_equal(out[2], period_lut[period]) and np.array_equal(out[5], status)
    assert np.array_equal(source_valid, source > 0) and np.array_equal(out[3][source > 0], source[source > 0] - 1)
    assert np.array_equal(plan_valid, plan >= 0) and np.array_equal(out[4][plan >= 0], plan_lut[plan[plan >= 0]])
    with pytest.raises(IndexError):
        codes(np.array([50], np.int32), *(a[:1] for a in (period, source, plan, status)), party_lut,
                        channel_of, period_lut, plan_lut, *(a[:1] for a in out[:4]), source_valid[:1], out[4][:1],
                        plan_valid[:1], out[5][:1])


@needs_core
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_usage_counts_in_either_counter_width(dtype) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    n, n_party, n_api, width, tier0 = 4_000, 7, 3, 9, 5
    party, api = rng.integers(0, n_party, n).astype(np.int32), rng.integers(0, n_api, n).astype(np.int32)
    period = np.full(n, 4, np.int32)
    status = rng.choice([int(Status.CHARGED), int(Status.FAILED)], n).astype(np.int8)
    source = rng.choice([int(Source.FREE), int(Source.PAYG)], n).astype(np.int8)
    tier = rng.integers(0, 3, n).astype(np.int16)
    status_cat, source_cat = np.full(256, 1, np.int16), np.full(256, 2, np.int16)
    counts = np.zeros(n_party * n_api * width, dtype)
    assert core.usage_counts(party, api, period, status, source, tier, status_cat, source_cat, int(Status.CHARGED),
                             int(Source.PAYG), tier0, 4, 1, n_api, width, counts) == 0
    cat = np.where(status == Status.CHARGED, np.where(source == Source.PAYG, tier0 + tier, 2), 1)
    expected = np.bincount((party * n_api + api) * width + cat, minlength=len(counts))
    assert np.array_equal(counts, expected)


@needs_core
def test_byte_counts_add_up() -> None:
    values = np.array([0, 5, 5, 255, 0, 5], np.uint8)
    counts = np.ones(256, np.int64)
    core.byte_counts(values, counts)
    assert counts[[0, 5, 255, 1]].tolist() == [3, 4, 2, 1] and counts.sum() == 256 + 6


@needs_core
def test_take_int32() -> None:
    values = np.array([5, -1, 7], np.int32)
    index = np.array([2, 0, 0, 1], np.int32)
    out = np.empty(4, np.int32)
    core.take_int32(values, index, out)
    assert out.tolist() == [7, 5, 5, -1]
    with pytest.raises(IndexError):
        core.take_int32(values, np.array([3], np.int32), np.empty(1, np.int32))


@needs_core
def test_plain_ends() -> None:
    for values, plain in ((["a", "b1", "x-y"], True), (["a", " b"], False), (["a", "b\t"], False), (["", "a"], False),
                          (["é"], False), (["aé"], False), ([], True)):
        for kind in (pa.string(), pa.large_string()):
            offsets, data = fast.string_buffers(pa.array(values, kind))
            assert bool(core.plain_ends(offsets, data)) is plain


@needs_core
def test_qps_seconds_give_qps_lines() -> None:
    rng = np.random.default_rng(10)
    n, n_party, n_api = 20_000, 30, len(CATALOG.apis)
    ts = np.sort(ms(OCT) + rng.integers(0, 40_000, n))
    party = rng.integers(0, n_party, n).astype(np.int32)
    api_ = rng.integers(0, n_api, n).astype(np.int32)
    status = np.where(rng.random(n) < 0.1, Status.DUPLICATE, Status.CHARGED).astype(np.int8)
    batch = Batch(party=party, api=api_, ts=ts, period=CATALOG.clock.periods(ts), success=np.ones(n, np.int8),
                  duplicate=(status == Status.DUPLICATE).astype(np.int8))
    out = Outcomes.empty(n)
    out.status[:] = status
    acc = accounts(CATALOG, account=[official(f"p{i}") for i in range(n_party)])
    parties = acc.parties()
    expected = qps_lines(CATALOG, addon_index(CATALOG, acc), parties, *second_counts(batch, out, n_api))
    for min_emit in (1, 2):
        cap = n + 1
        o = [np.empty(cap, np.int64) for _ in range(3)]
        m = core.qps_seconds(party, api_, ts, status, int(Status.DUPLICATE), n_api, n_party, min_emit, *o)
        order = np.lexsort((o[1][:m], o[0][:m]))
        got = qps_lines(CATALOG, addon_index(CATALOG, acc), parties, o[0][:m][order], o[1][:m][order], o[2][:m][order])
        if min_emit == 2:
            for key in expected:
                got.setdefault(key, (1, 0))
        assert got == expected


@needs_core
def test_plan_units_sum_what_each_call_took() -> None:
    rng = np.random.default_rng(13)
    n, n_plan, n_per, n_api = 50_000, 40, 3, 4
    plan = np.where(rng.random(n) < 0.4, rng.integers(0, n_plan, n), -1).astype(np.int32)
    source = np.where(rng.random(n) < 0.5, Source.SHARED, Source.DEDICATED).astype(np.int8)
    api_ = rng.integers(0, n_api, n).astype(np.int32)
    period = (700 + rng.integers(0, n_per, n)).astype(np.int32)
    points = np.array([1, 2, 5, 3], dtype=np.int64)
    units = np.zeros(n_plan * n_per, dtype=np.int64)
    assert core.plan_units(plan, source, api_, period, points, int(Source.SHARED), 700, n_per, units) == 0
    paid = plan >= 0
    took = np.where(source[paid] == Source.SHARED, points[api_[paid]], 1)
    expected = np.bincount(plan[paid] * n_per + period[paid] - 700, weights=took, minlength=n_plan * n_per)
    assert units.tolist() == expected.astype(np.int64).tolist()
    assert core.plan_units(plan, source, api_, period, points, int(Source.SHARED), 701, n_per, units) == -1


@needs_core
def test_plan_use_without_the_dense_count_gives_the_same_bills(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cat, acc, t = scenario(14)
    dense = bills_to_json(rerate(t, cat, acc).bills)
    monkeypatch.setattr(usage_module, "DENSE_BINS", 0)  # plan use then summed by sorting (as for very many plans)
    monkeypatch.setattr(fast._core, "plan_units", lambda *a: -1)
    assert bills_to_json(rerate(t, cat, acc).bills) == dense


def test_parallel_read_reports_the_first_bad_record_in_input_order(tmp_path: Path) -> None:
    from ocrledger.errors import CallsError

    cat, acc, t = scenario(11, 400)
    folder = tmp_path / "calls"
    folder.mkdir()
    for k in range(4):
        part = t.slice(k * 100, 100)
        if k >= 2:  # files 2 and 3 each hold a bad API code
            codes = part.column("api").to_pylist()
            codes[7 + k] = "NoSuchApi"
            part = part.set_column(part.schema.get_field_index("api"), "api", pa.array(codes))
        pq.write_table(part, folder / f"part-{k}.parquet")
    with pytest.raises(CallsError) as err:
        rerate(folder, cat, acc, out=tmp_path / "out")
    assert "part-2.parquet" in str(err.value) and "row 10" in str(err.value)
    good = rerate([folder / "part-0.parquet", folder / "part-1.parquet"], cat, acc)
    assert bills_to_json(good.bills) == bills_to_json(rerate(t.slice(0, 200), cat, acc).bills)


def test_parallel_read_of_more_files_than_it_reads_ahead(tmp_path: Path) -> None:
    from ocrledger.rerate.rerater import READ_AHEAD

    cat, acc, t = scenario(15, 900)
    folder = tmp_path / "calls"
    folder.mkdir()
    files = 3 * READ_AHEAD
    step = -(-t.num_rows // files)
    for k in range(files):
        pq.write_table(t.slice(k * step, step), folder / f"part-{k:02d}.parquet")
    assert bills_to_json(rerate(folder, cat, acc).bills) == bills_to_json(rerate(t, cat, acc).bills)


@pytest.mark.parametrize("columns", [True, False])
def test_bill_files_from_columns_or_objects_are_the_same(tmp_path: Path, monkeypatch, columns: bool) -> None:  # type: ignore[no-untyped-def]
    from ocrledger.bills import files as billfiles
    from ocrledger.bills.render import render

    cat, acc, t = scenario(12)
    if not columns:  # as without the compiled formatter: Bill objects of the same columns + render
        monkeypatch.setattr(billfiles, "_billfmt", None)
    result = rerate(t, cat, acc, out=tmp_path)
    assert (tmp_path / "bills.txt").read_text(encoding="utf-8") == render(result.bills, "text")
    assert (tmp_path / "bills.json").read_text(encoding="utf-8") == bills_to_json(result.bills) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bills.json", "bills.txt", "calls.parquet", "summary.json"]


def overflow_calls(ids: list[str], ts: list[int]) -> "pa.Table":
    """Successful calls of account "u" to API "A" (``helpers.overflow_setup``)."""
    n = len(ids)
    return pa.table({"record_id": ids, "account": ["u"] * n, "api": ["A"] * n, "ts": ts, "success": [1] * n})


@needs_core
@pytest.mark.parametrize("row_group", [2, 1 << 20])
def test_kernel_error_stops_the_early_writer_and_writes_nothing(tmp_path: Path, monkeypatch, row_group: int) -> None:  # type: ignore[no-untyped-def]
    # calls.parquet is written as the kernel rates; an overflow in a later step must stop the writer
    # (not leave it waiting) and leave no file: 5e18 micro-units a call, the second call passes INT64_MAX
    monkeypatch.setattr(fast, "ROW_GROUP", row_group)
    cat, acc = overflow_setup()
    t = overflow_calls([f"r{i}" for i in range(6)], [ms(OCT) + i for i in range(6)])
    from ocrledger.errors import MoneyError

    with pytest.raises(MoneyError, match=r"<arrow table>: row 2: record r1: its PAYG spend"):
        rerate(t, cat, acc, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the folder the failed rerate made is removed again


@needs_core
def test_record_ids_in_parts_and_a_failed_gather() -> None:
    values = [f"id{i}" for i in range(10)]
    offsets, data = fast.string_buffers(pa.array(values))
    perm = np.array([9, 0, 3, 3, 7], np.int64)
    ids = fast.RecordIds(offsets, data, perm, 2)
    assert [ids.part(k).to_pylist() for k in range(3)] == [["id9", "id0"], ["id3", "id3"], ["id7"]]
    with pytest.raises(RuntimeError, match="already taken"):  # handed out once, then let go of
        ids.part(1)
    broken = fast.RecordIds(offsets, data, np.array([0, 42], np.int64), 1)
    assert broken.part(0).to_pylist() == ["id0"]
    with pytest.raises(RuntimeError, match="record ids"):
        broken.part(1)


@needs_core
def test_kernel_error_names_the_row_after_the_month_cut_and_across_chunks(tmp_path: Path) -> None:
    # November calls are dropped for --month 2026-10; rows still count them: r1 is row 4
    cat, acc = overflow_setup()
    nov = ms("2026-11-05T00:00:00+08:00")
    ids = ["n0", "r0", "n1", "r1", "r2"]
    ts = [nov, ms(OCT), nov + 1, ms(OCT) + 1, ms(OCT) + 2]
    t = overflow_calls(ids, ts)
    from ocrledger.errors import MoneyError

    with pytest.raises(MoneyError, match=r"<arrow table>: row 4: record r1: "):
        rerate(t, cat, acc, month="2026-10", chunk_rows=2, out=tmp_path / "out")


def test_kernel_error_in_the_spill_passes_names_the_file_and_row() -> None:
    # the spill passes do not carry the rows: the inputs are read again for the failing call (rerater.find_call)
    cat, acc = overflow_setup()
    t = overflow_calls([f"r{i}" for i in range(6)], [ms(OCT) + 5 - i for i in range(6)])
    from ocrledger.errors import MoneyError

    with pytest.raises(MoneyError, match=r"^<arrow table>: row 5: record r4: its PAYG spend"):
        rerate(t, cat, acc, memory_rows=0, bucket_rows=2, chunk_rows=2)
