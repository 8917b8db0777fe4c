#!/usr/bin/env python3
"""Checks that the state store is reached only through its domain stores.

Domain code speaks in the stores' verbs (create a job, append a report,
record an upload, retire, remove); only the files below build state-store
keys and call the store's primitives (values, hashes, logs, lists, sets,
indexes, leases, atomic batches). A call of a primitive anywhere else in
the crates' sources (tests excepted) fails the check and names the line.

    scripts/state-keys.py     # exit 1 if a primitive is called outside a store
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["proto", "common", "lake", "worker", "scheduler", "cli", "bench"]

# Each store, and what it keeps (docs/design.md, "State").
STORES = {
    "common/src/state/": "the store itself (Redis, memory, journal)",
    "common/src/fleet.rs": "the worker registry",
    "common/src/fleet/throughput.rs": "the fleet's throughput by minute",
    "common/src/query_cancel.rs": "a data query's cancel flag",
    "common/src/readiness.rs": "the readiness probe's read",
    "lake/src/ledger.rs": "the ingest ledger (ids ingested, ingest leases)",
    "scheduler/src/export/jobs.rs": "export jobs",
    "scheduler/src/query/jobs.rs": "data query jobs",
    "scheduler/src/query/saved.rs": "saved data queries",
    "scheduler/src/fleet/job_records.rs": "what both job stores keep alike (spec, state, queues, leases)",
    "scheduler/src/fleet/lease.rs": "renewing and releasing a held lease",
    "scheduler/src/fleet/store_epoch.rs": "the store's epoch and recovery lease",
    "scheduler/src/fleet/secrets.rs": "the fleet's shared secrets",
    "scheduler/src/api/edge/idempotency.rs": "idempotency records of API calls",
}

PRIMITIVES = (
    "set_if_absent|set_fenced|hash_set_if_absent|hash_get_all|log_append_once|log_read|"
    "list_push|list_all|list_len|list_first|list_remove|set_add|set_remove|set_members|"
    "set_contains|index_add|index_all|index_up_to|index_remove|apply_atomically|"
    "compare_and_set|try_acquire_lease|renew_lease|release_lease"
)
CALL = re.compile(rf"\.({PRIMITIVES})\(|\bstate\s*\.\s*(get|set|delete)\(")


def outside_test_module(text: str) -> str:
    """The file without its `#[cfg(test)] mod tests { ... }` block."""
    marker = text.find("#[cfg(test)]\nmod tests")
    return text if marker < 0 else text[:marker]


def main() -> int:
    found = []
    for crate in CRATES:
        for file in sorted((ROOT / crate / "src").rglob("*.rs")):
            rel = file.relative_to(ROOT).as_posix()
            if any(rel == s or (s.endswith("/") and rel.startswith(s)) for s in STORES):
                continue
            text = outside_test_module(file.read_text())
            for number, line in enumerate(text.splitlines(), 1):
                match = CALL.search(line)
                if match and not line.lstrip().startswith("//"):
                    found.append(f"{rel}:{number}: {line.strip()}")
    if found:
        print("state-store primitives called outside the stores (scripts/state-keys.py):")
        print("\n".join(found))
        return 1
    print(f"state keys built only in the {len(STORES)} stores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
