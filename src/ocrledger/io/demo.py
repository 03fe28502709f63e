"""The bundled sample: the seed's two worked examples plus shared-plan, marketplace and verification scenarios."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..model.accounts import Accounts, parse_accounts
from ..model.catalog import Catalog, default_catalog
from ..model.clock import parse_period

DEMO_MONTH = "2026-10"


def demo_accounts_text() -> str:
    return resources.files("ocrledger").joinpath("data/demo_accounts.toml").read_text("utf-8")


def demo_accounts(catalog: Catalog) -> Accounts:
    import tomllib

    return parse_accounts(tomllib.loads(demo_accounts_text()), catalog, source="<demo accounts>")


def demo_calls(catalog: Catalog) -> dict[str, np.ndarray]:
    """Deterministic call records for October 2026 (epoch-ms timestamps)."""
    start = int(catalog.clock.month_starts[parse_period(DEMO_MONTH)])
    month_ms = 31 * 86_400_000
    parts: list[tuple[str, str, str, str, int, int]] = []  # prefix, account, channel, api, calls, failed every

    def spread(n: int) -> np.ndarray:
        return start + (np.arange(n, dtype=np.int64) * month_ms) // n

    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("record_id", "account", "channel", "api", "ts", "success")}

    def add(prefix: str, account: str, channel: str, api: str, n: int, fail_every: int = 0) -> None:
        columns["record_id"].append(np.array([f"{prefix}-{i:06d}" for i in range(n)], dtype=str))
        columns["account"].append(np.full(n, account))
        columns["channel"].append(np.full(n, channel))
        columns["api"].append(np.full(n, api))
        columns["ts"].append(spread(n) + 1000 * len(columns["ts"]))
        success = np.ones(n, dtype=np.int8)
        if fail_every:
            success[fail_every - 1 :: fail_every] = 0
        columns["success"].append(success)

    del parts
    add("idc", "seed-idcard", "official", "RecognizeIdcard", 120_200)  # 200 free + 120,000 PAYG
    add("gen", "seed-plan", "official", "RecognizeGeneral", 5_000)  # 200 free, 1,000 plan, 3,800 PAYG
    add("shop-idc", "shop-42", "marketplace", "RecognizeIdcard", 300)  # 10 points each
    add("shop-all", "shop-42", "marketplace", "RecognizeAllText", 150)  # 20 points each: plan runs out
    add("vat", "fin-7", "official", "VerifyVATInvoice", 90, fail_every=10)  # 81 ok: 50 pool, 31 PAYG
    add("all", "fin-7", "official", "RecognizeAllText", 900)  # 200 free, then 20-point shared calls
    add("tbl", "fin-7", "official", "RecognizeTable", 800)  # 200 free, plan until refund, then PAYG
    return {k: np.concatenate(v) for k, v in columns.items()}


def write_demo(folder: Path) -> list[Path]:
    """Write the bundled catalog, the demo's accounts TOML and calls CSV (ISO timestamps) into ``folder``."""
    from importlib import resources

    catalog = default_catalog()
    folder.mkdir(parents=True, exist_ok=True)
    catalog_path = folder / "catalog.toml"
    catalog_path.write_text(resources.files("ocrledger").joinpath("data/default_catalog.toml").read_text("utf-8"),
                            encoding="utf-8")
    accounts = folder / "accounts.toml"
    accounts.write_text(demo_accounts_text(), encoding="utf-8")
    calls = demo_calls(catalog)
    clock = catalog.clock
    path = folder / "calls.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("record_id,account,channel,api,ts,success\n")
        for rid, acc, ch, api, ts, ok in zip(
            calls["record_id"], calls["account"], calls["channel"], calls["api"], calls["ts"].tolist(), calls["success"]
        ):
            fh.write(f"{rid},{acc},{ch},{api},{clock.label(ts)},{int(ok)}\n")
    return [catalog_path, accounts, path]
