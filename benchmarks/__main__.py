"""``python -m benchmarks [--short] [--databases postgres,sqlite,mysql]``

Measures enqueue, drain and pickup of django_taskqueue beside the database's raw limit,
in one run per database, and prints a table of figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/taskqueue_bench",
    "mysql": "mysql://root@127.0.0.1:3306/taskqueue_bench",
}


def create_database(name: str) -> None:
    """A fresh, dedicated database for each run."""
    if name == "postgres":
        for sql in (
            "DROP DATABASE IF EXISTS taskqueue_bench WITH (FORCE)",
            "CREATE DATABASE taskqueue_bench",
        ):
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                check=True,
            )
    elif name == "mysql":
        subprocess.run(
            [
                "mariadb",
                "-h",
                "127.0.0.1",
                "-uroot",
                "-e",
                "DROP DATABASE IF EXISTS taskqueue_bench; "
                "CREATE DATABASE taskqueue_bench CHARACTER SET utf8mb4",
            ],
            check=True,
        )


def measure(name: str, url: str, short: bool) -> dict:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "benchmarks.settings"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args = [sys.executable, "-m", "benchmarks.measure"] + (["--short"] if short else [])
    out = subprocess.run(args, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows(r: dict) -> list[tuple[str, str, str, str, str]]:
    def ratio(ours: float, raw: float) -> str:
        return f"{ours / raw:.2f}x" if raw else "-"

    # The targets are set for PostgreSQL; other databases show their figures only.
    targets = r["vendor"] == "postgresql"

    def target(text: str) -> str:
        return text if targets else ""

    table = [
        (
            "enqueue, 1 per transaction (/s)",
            f"{r['enqueue']:.0f}",
            f"{r['raw_insert']:.0f}",
            ratio(r["enqueue"], r["raw_insert"]),
            target(">= 0.70x"),
        ),
        (
            "enqueue_many (/s)",
            f"{r['enqueue_many']:.0f}",
            f"{r['raw_bulk']:.0f}",
            ratio(r["enqueue_many"], r["raw_bulk"]),
            target(">= 0.50x"),
        ),
        (
            "drain, 1 process, defaults (/s)",
            f"{r['drain_default']['rate']:.0f}",
            f"{r['raw_claim_32']:.0f}",
            ratio(r["drain_default"]["rate"], r["raw_claim_32"]),
            target(">= 0.25x"),
        ),
        (
            "drain, 1 process, 1 thread (/s)",
            f"{r['drain_1_thread']['rate']:.0f}",
            f"{r['raw_claim_1']:.0f}",
            ratio(r["drain_1_thread"]["rate"], r["raw_claim_1"]),
            "(vs batch of 1)",
        ),
        (
            "drain, 2 processes (/s)",
            f"{r['drain_2_processes']['rate']:.0f}",
            f"{r['raw_claim_32']:.0f}",
            ratio(r["drain_2_processes"]["rate"], r["raw_claim_32"]),
            "",
        ),
        ("worker peak RSS (MB)", f"{r['drain_default']['rss_mb']:.1f}", "", "", target("<= 60")),
    ]
    if r.get("raw_insert_django"):
        # The same raw loops on a connection set up as Django sets it up: values quoted
        # into the SQL text, nothing prepared.
        table += [
            (
                "  raw, Django's connection: insert",
                f"{r['enqueue']:.0f}",
                f"{r['raw_insert_django']:.0f}",
                ratio(r["enqueue"], r["raw_insert_django"]),
                "",
            ),
            (
                "  raw, Django's connection: drain",
                f"{r['drain_default']['rate']:.0f}",
                f"{r['raw_claim_32_django']:.0f}",
                ratio(r["drain_default"]["rate"], r["raw_claim_32_django"]),
                "",
            ),
        ]
    if "pickup" in r:
        (p50, p95), (raw50, raw95) = r["pickup"], r["raw_pickup"]
        table += [
            (
                "pickup latency p50 (ms)",
                f"{p50 * 1000:.2f}",
                f"{raw50 * 1000:.2f}",
                ratio(p50, raw50),
                target("<= 2x"),
            ),
            (
                "pickup latency p95 (ms)",
                f"{p95 * 1000:.2f}",
                f"{raw95 * 1000:.2f}",
                ratio(p95, raw95),
                target("<= 3x"),
            ),
        ]
    return table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="a few thousand tasks (for CI)")
    parser.add_argument("--databases", default="postgres,sqlite,mysql")
    options = parser.parse_args()
    print(
        f"django_taskqueue benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in options.databases.split(","):
            url = (
                f"sqlite:///{tmp}/bench.sqlite3"
                if name == "sqlite"
                else os.environ.get(f"BENCH_{name.upper()}_URL", DEFAULT_URLS[name])
            )
            if f"BENCH_{name.upper()}_URL" not in os.environ:
                create_database(name)
            result = measure(name, url, options.short)
            print(f"\n{name} ({'short' if options.short else 'full'} run)")
            header = ("metric", "django_taskqueue", "raw", "ratio", "target")
            table = [header, *rows(result)]
            widths = [max(len(row[i]) for row in table) for i in range(5)]
            for row in table:
                print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
            rounds = result.get("drain_rounds", [])
            if len(rounds) > 1:
                print(
                    "drain, defaults: median of alternating rounds; ratio per round: "
                    + ", ".join(f"{ratio:.2f}x" for ratio in rounds)
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
