"""Plan offers in the catalog, and the advisor: brute-force checked optimum, the seed's example, the CLI."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from helpers import CATALOG, OCT, accounts, api, calls, official, repeat

from ocrledger.advisor.advise import advise, parse_months, payg_cost
from ocrledger.errors import CatalogError, OcrledgerError
from ocrledger.model.catalog import parse_catalog
from ocrledger.model.money import to_decimal

D = Decimal

# --- [[plan_offer]] in the catalog --------------------------------------------------------------


def test_default_catalog_carries_the_public_offers() -> None:
    got = [(o.kind, o.apis if o.kind == "dedicated" else "*", o.quantity, to_decimal(o.price).normalize(), o.validity_months)
           for o in CATALOG.plan_offers]
    assert got == [
        ("shared", "*", 5_000, D("45"), 12), ("shared", "*", 10_000, D("83.3"), 12),
        ("shared", "*", 100_000, D("577.5"), 12), ("shared", "*", 1_000_000, D("2805"), 12),
        ("dedicated", ("RecognizeGeneral",), 500, D("45"), 12), ("dedicated", ("RecognizeGeneral",), 10_000, D("550"), 12),
        ("dedicated", ("RecognizeGeneral",), 100_000, D("2805"), 12),
    ]
    shared = CATALOG.plan_offers[0]
    assert shared.apis == tuple(a.code for a in CATALOG.apis if a.shared)  # every API that accepts shared plans
    assert "RecognizeAllText" in shared.apis


def offer_catalog(*offers: dict) -> object:
    return parse_catalog({"api": [api("A"), api("U", dedicated=False)], "plan_offer": list(offers)}, source="<t>")


def test_offer_round_trip() -> None:
    cat = offer_catalog(
        {"kind": "shared", "apis": ["U", "A"], "quantity": 20, "price": "1.5", "validity": "6m"},
        {"kind": "dedicated", "api": "A", "quantity": 3, "price": "1", "name": "three"},
    )
    assert [o.apis for o in cat.plan_offers] == [("A", "U"), ("A",)]
    assert [o.validity_months for o in cat.plan_offers] == [6, 12]
    again = parse_catalog({"api": [api("A"), api("U", dedicated=False)], "plan_offer": cat.plan_offers_raw})
    assert again.plan_offers == cat.plan_offers


@pytest.mark.parametrize("offer, field", [
    ({"kind": "bulk", "quantity": 1, "price": "1"}, "plan_offer[0].kind"),
    ({"kind": "dedicated", "api": "U", "quantity": 1, "price": "1"}, "plan_offer[0].api"),  # U refuses dedicated
    ({"kind": "dedicated", "api": "Z", "quantity": 1, "price": "1"}, "plan_offer[0].api"),
    ({"kind": "dedicated", "apis": ["A"], "quantity": 1, "price": "1"}, "plan_offer[0].apis"),
    ({"kind": "shared", "api": "A", "quantity": 1, "price": "1"}, "plan_offer[0].api"),
    ({"kind": "shared", "quantity": 0, "price": "1"}, "plan_offer[0].quantity"),
    ({"kind": "shared", "quantity": 5, "price": 1.5}, "plan_offer[0].price"),
    ({"kind": "shared", "quantity": 5, "price": "0.0000001"}, "plan_offer[0].price"),
    ({"kind": "shared", "quantity": 5}, "plan_offer[0].price"),
    ({"kind": "shared", "quantity": 5, "price": "1", "validity": "1w"}, "plan_offer[0].validity"),
    ({"kind": "shared", "quantity": 5, "price": "1", "colour": "red"}, "plan_offer[0]"),
])
def test_bad_offers_name_the_field(offer: dict, field: str) -> None:
    with pytest.raises(CatalogError) as info:
        offer_catalog(offer)
    assert info.value.field == field


def test_offer_listed_twice() -> None:
    with pytest.raises(CatalogError, match="same plan"):
        offer_catalog({"kind": "shared", "quantity": 5, "price": "1"}, {"kind": "shared", "quantity": 5, "price": "2"})


# --- money helpers of the search agree with the bill's -------------------------------------------


def test_payg_cost_matches_the_seed() -> None:
    idcard = CATALOG.api("RecognizeIdcard")
    assert payg_cost(idcard, np.array([120_000]))[0] == 6_110_000_000
    assert payg_cost(idcard, np.array([20_000]))[0] == 1_320_000_000


def test_parse_months() -> None:
    assert len(parse_months("2026-08..2026-10")) == 3 and len(parse_months("2026-10")) == 1
    with pytest.raises(OcrledgerError):
        parse_months("2026-10..2026-08")


# --- the seed's example ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_advice():  # type: ignore[no-untyped-def]
    acc = accounts(CATALOG, account=[official("u", "RecognizeIdcard")])
    rows = calls(repeat(120_200, "u", "RecognizeIdcard", OCT, step_ms=10_000))
    return advise(rows, "u", "2026-10", CATALOG, acc)


def test_seed_120200_idcard_calls(seed_advice) -> None:  # type: ignore[no-untyped-def]
    # 120,200 calls, 200 free: 120,000 calls to pay = 1,200,000 shared points (10 a call). PAYG only:
    # 10,000 x 0.0825 + 90,000 x 0.0495 + 20,000 x 0.0415 = 825 + 4,455 + 830 = 6,110.00.
    # Plans pay for the month's first calls, so PAYG shrinks from the top (cheapest) tier down:
    #   1 x 1M (100,000 calls): 2,805 + PAYG(20,000) = 2,805 + 825 + 495        = 4,125.00
    #   1 x 1M + 1 x 100k:      3,382.5 + PAYG(10,000) = 3,382.5 + 825          = 4,207.50
    #   1 x 1M + 2 x 100k:      2,805 + 1,155 (covers all 120,000 calls)        = 3,960.00  <- cheapest
    #   1 x 1M + 20 x 10k:      2,805 + 1,666                                   = 4,471.00
    #   2 x 1M:                 5,610.00;   12 x 100k: 6,930.00
    # On its own only the 1M plan beats PAYG (4,125.00: saves 1,985.00); 100k alone costs
    # 577.5 a plan but saves at most 10,000 x 0.0415..0.0495 per plan; 5k and 10k cost more
    # per call (0.09 and 0.0833) than even the first tier (0.0825).
    adv = seed_advice
    assert adv.demand == (("2026-10", "RecognizeIdcard", 120_000, 1_200_000),)
    assert adv.actual == 6_110_000_000 and adv.baseline.total == 6_110_000_000
    assert adv.best.total == 3_960_000_000
    assert sorted((p.offer.quantity, p.count) for p in adv.best.purchases) == [(100_000, 2), (1_000_000, 1)]
    assert adv.saving == 2_150_000_000
    assert adv.verified == adv.best.total  # the engine, re-rating with the plans, agrees
    beats = {a.offer.quantity: (a.count, a.saving) for a in adv.alone if a.saving > 0}
    assert beats == {1_000_000: (1, 1_985_000_000)}
    text = adv.text()
    assert "Cheapest mix:           CNY 3,960.00" in text and "Saving against what was paid: CNY 2,150.00" in text
    assert "saves 1,985.00" in text and "(the same)" in text


# --- brute force ----------------------------------------------------------------------------------

SMALL_TIERS = [{"upto": 5, "price": "1.0"}, {"upto": 12, "price": "0.6"}, {"price": "0.35"}]


def engine_oracle(demand_calls: dict[str, list[int]], plans: list[tuple[str, int]], points: int, tiers: list,
                  free: int) -> int:
    """An independent per-call simulation of SPEC §2 for one API (micro-units): free, dedicated plans
    one by one, shared plans one by one (whole calls only), graduated PAYG, each month's line rounded down."""
    left = [[kind, q] for kind, q in sorted(plans, key=lambda p: p[0] != "dedicated")]
    total = 0
    for month in sorted(demand_calls):
        n = demand_calls[month]
        payg = 0
        for k in range(len(n) if isinstance(n, list) else n):
            if k < free:
                continue
            for plan in left:
                need = 1 if plan[0] == "dedicated" else points
                if plan[1] >= need:
                    plan[1] -= need
                    break
            else:
                payg += 1
        cost, low = 0, 0
        for t in tiers:
            high = t.get("upto", 10**12)
            cost += max(0, min(payg, high) - low) * int(D(t["price"]) * 1_000_000)
            low = high
        total += cost // 10_000 * 10_000
    return total


@pytest.mark.parametrize("seed", range(6))
def test_single_api_optimum_by_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = int(rng.choice([1, 2, 5]))
    offers = [
        {"kind": "dedicated", "api": "A", "quantity": int(rng.integers(2, 6)), "price": str(D(int(rng.integers(8, 40))) / 10)},
        {"kind": "shared", "quantity": points * int(rng.integers(2, 5)), "price": str(D(int(rng.integers(10, 30))) / 10)},
        {"kind": "shared", "quantity": points * int(rng.integers(6, 12)), "price": str(D(int(rng.integers(25, 60))) / 10)},
    ]
    cat = parse_catalog({"api": [api("A", free_monthly=2, shared_points=points, tiers=SMALL_TIERS)],
                         "plan_offer": offers}, source="<t>")
    acc = accounts(cat, account=[official("u", "A")])
    per_month = {"2026-10": int(rng.integers(3, 20)), "2026-11": int(rng.integers(3, 20)), "2026-12": int(rng.integers(0, 20))}
    rows = []
    for month, n in per_month.items():
        rows += repeat(n, "u", "A", f"{month}-03T00:00:00+08:00", prefix=f"{month}-")
    adv = advise(calls(rows), "u", "2026-10..2026-12", cat, acc)

    demand = {m: n for m, n in per_month.items()}
    need = sum(max(0, n - 2) for n in demand.values())
    bounds = [-(-need // o.quantity) if o.kind == "dedicated" else -(-need * points // o.quantity) for o in cat.plan_offers]
    best = None
    for counts in itertools.product(*[range(b + 1) for b in bounds]):
        plans = [(o.kind, o.quantity) for o, c in zip(cat.plan_offers, counts) for _ in range(c)]
        cost = engine_oracle(demand, plans, points, SMALL_TIERS, 2) + sum(o.price * c for o, c in zip(cat.plan_offers, counts))
        best = cost if best is None else min(best, cost)
    assert adv.best.total == best
    assert adv.verified == adv.best.total
    assert adv.baseline.total == engine_oracle(demand, [], points, SMALL_TIERS, 2) == adv.actual


def model_oracle(months: list[dict[str, int]], apis: dict[str, tuple[int, list]], ded: dict[str, int],
                 pool: int, market: bool = False) -> int | None:
    """The documented model in plain Python: month by month, API by API, dedicated then the shared pool."""
    total = 0
    for month in months:
        for code in sorted(month):
            rest = month[code]
            take = min(rest, ded.get(code, 0))
            ded[code] = ded.get(code, 0) - take
            rest -= take
            points, tiers = apis[code]
            take = min(rest, pool // points)
            pool -= take * points
            rest -= take
            if market and rest:
                return None
            cost, low = 0, 0
            for t in tiers:
                high = t.get("upto", 10**12)
                cost += max(0, min(rest, high) - low) * int(D(t["price"]) * 1_000_000)
                low = high
            total += cost // 10_000 * 10_000
    return total


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("channel", ["official", "marketplace"])
def test_two_apis_optimum_by_brute_force(seed: int, channel: str) -> None:
    rng = np.random.default_rng(100 + seed)
    offers = [
        {"kind": "dedicated", "api": "A", "quantity": int(rng.integers(2, 5)), "price": str(D(int(rng.integers(5, 30))) / 10)},
        {"kind": "dedicated", "api": "B", "quantity": int(rng.integers(3, 7)), "price": str(D(int(rng.integers(10, 40))) / 10)},
        {"kind": "shared", "quantity": int(rng.integers(4, 9)) * 2, "price": str(D(int(rng.integers(15, 50))) / 10)},
    ]
    apis = [api("A", free_monthly=1, shared_points=1, tiers=SMALL_TIERS), api("B", free_monthly=1, shared_points=2, tiers=SMALL_TIERS)]
    cat = parse_catalog({"api": apis, "plan_offer": offers}, source="<t>")
    if channel == "official":
        acc = accounts(cat, account=[official("u", "A", "B")])
    else:
        acc = accounts(cat, account=[{"id": "u", "channel": "marketplace"}])
    rows: list = []
    months: list[dict[str, int]] = []
    for m, month in enumerate(["2026-10", "2026-11"]):
        counts = {"A": int(rng.integers(2, 9)), "B": int(rng.integers(2, 9))}
        # A's calls all come before B's in each month, so the engine's time order is the model's API order.
        rows += repeat(counts["A"], "u", "A", f"{month}-02T00:00:00+08:00", prefix=f"a{m}-", channel=channel)
        rows += repeat(counts["B"], "u", "B", f"{month}-09T00:00:00+08:00", prefix=f"b{m}-", channel=channel)
        free = 0 if channel == "marketplace" else 1
        months.append({k: max(0, v - free) for k, v in counts.items()})
    adv = advise(calls(rows), "u", "2026-10..2026-11", cat, acc, channel=channel)
    spec = {"A": (1, SMALL_TIERS), "B": (2, SMALL_TIERS)}
    need_a, need_b = sum(m["A"] for m in months), sum(m["B"] for m in months)
    o = cat.plan_offers
    best = None
    for ca, cb, cs in itertools.product(range(-(-need_a // o[0].quantity) + 1), range(-(-need_b // o[1].quantity) + 1),
                                        range(-(-(need_a + 2 * need_b) // o[2].quantity) + 1)):
        payg = model_oracle(months, spec, {"A": ca * o[0].quantity, "B": cb * o[1].quantity}, cs * o[2].quantity,
                            market=channel == "marketplace")
        if payg is None:
            continue
        cost = payg + ca * o[0].price + cb * o[1].price + cs * o[2].price
        best = cost if best is None else min(best, cost)
    assert adv.best.feasible and adv.best.total == best
    # Each API's calls come in one block per month and every plan quantity is a multiple of the points,
    # so the engine agrees with the model exactly.
    assert adv.verified == adv.best.total


def test_offers_shorter_than_the_window_are_left_out() -> None:
    cat = parse_catalog({"api": [api("A", free_monthly=0, tiers=SMALL_TIERS)], "plan_offer": [
        {"kind": "shared", "quantity": 10, "price": "1", "validity": "1m"},
        {"kind": "shared", "quantity": 20, "price": "5"},
    ]}, source="<t>")
    acc = accounts(cat, account=[official("u", "A")])
    rows = repeat(8, "u", "A", "2026-10-02T00:00:00+08:00") + repeat(8, "u", "A", "2026-11-02T00:00:00+08:00", prefix="n")
    adv = advise(calls(rows), "u", "2026-10..2026-11", cat, acc)
    assert [name for name, _ in adv.skipped] == ["shared 10 points"]
    assert "shorter than the 2-month window" in adv.text()
    one = advise(calls(rows), "u", "2026-10", cat, acc)
    assert [(p.offer.quantity, p.count) for p in one.best.purchases] == [(10, 1)]  # 8 calls: 1 plan < PAYG 8.00


def test_actual_counts_plans_bought_in_the_window() -> None:
    cat = parse_catalog({"api": [api("A", free_monthly=0, tiers=SMALL_TIERS)], "plan_offer": [
        {"kind": "shared", "quantity": 10, "price": "3"}]}, source="<t>")
    acc = accounts(cat, account=[official("u", "A")], plan=[
        {"id": "p", "account": "u", "kind": "shared", "quantity": 4, "start": OCT, "price": "2.5"}])
    rows = repeat(8, "u", "A", "2026-10-02T00:00:00+08:00")
    adv = advise(calls(rows), "u", "2026-10", cat, acc)
    assert adv.actual_plans == (("p", 2_500_000),)
    assert adv.actual == adv.actual_bills + 2_500_000 == 4_000_000 + 2_500_000  # 4 PAYG calls at 1.0
    assert adv.best.total == 3_000_000 and adv.saving == 3_500_000


def test_unknown_account() -> None:
    with pytest.raises(OcrledgerError, match="has no calls"):
        advise(calls(repeat(2, "u", "RecognizeIdcard", OCT)), "v", "2026-10", CATALOG, None)


def test_cli(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ocrledger", *args], capture_output=True, text=True, timeout=300)

    assert run("demo", "--write", str(tmp_path)).returncode == 0
    base = ["advise", "--accounts", str(tmp_path / "accounts.toml"), "--calls", str(tmp_path / "calls.csv")]
    proc = run(*base, "--account", "seed-idcard", "--months", "2026-10..2026-10")
    assert proc.returncode == 0, proc.stderr
    assert "CNY 3,960.00" in proc.stdout and "2 x Shared plan 100,000 points" in proc.stdout
    data = json.loads(run(*base, "--account", "shop-42", "--channel", "marketplace", "--months", "2026-10",
                          "--format", "json").stdout)
    assert data["payg_only"]["feasible"] is False and data["best"]["total"] == "83.300000"
    proc = run(*base, "--account", "seed-idcard", "--months", "2026-13")
    assert proc.returncode == 2 and proc.stderr.startswith("ocrledger: error:")
