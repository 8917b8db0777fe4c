"""The DuckDB side of `auditx-bench --queries`: each data query over the same
Parquet files of the audit tables, timed as `COPY (query) TO csv`.

Every table is a view of its files as a data query sees it: the hive
partitions (`tenant=`, `year=`, `month=`) read from the paths, rows marked
deleted left out, and the storage columns (`deleted`, `entity`, `org`,
`tenant`) not shown. Prints one JSON object: per query its seconds and rows,
the peak RSS and DuckDB's version.

Usage: duckdb_queries.py LAKE_DIR TENANT QUERIES_JSON OUT_DIR
  QUERIES_JSON: [{"name": ..., "sql": ...}, ...]
"""

import json
import os
import resource
import sys
import time

import duckdb

HIDDEN = ("tenant", "deleted", "entity", "org")


def main():
    lake, tenant, queries_file, out_dir = sys.argv[1:5]
    with open(queries_file) as f:
        queries = json.load(f)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in sorted(os.listdir(lake)):
        root = os.path.join(lake, table, f"tenant={tenant}")
        if not os.path.isdir(root):
            continue
        files = f"{root}/**/*.parquet"
        source = f"read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        hidden = ", ".join(c for c in HIDDEN if c in columns)
        shown = f"* EXCLUDE ({hidden})" if hidden else "*"
        alive = "WHERE deleted IS NOT TRUE" if "deleted" in columns else ""
        con.execute(f"CREATE VIEW {table} AS SELECT {shown} FROM {source} {alive}")
    results = []
    for query in queries:
        out = os.path.join(out_dir, f"duckdb-{query['name']}.csv")
        started = time.monotonic()
        written = con.execute(f"COPY ({query['sql']}) TO '{out}' (FORMAT csv, HEADER true)").fetchone()
        seconds = time.monotonic() - started
        results.append({"name": query["name"], "seconds": seconds, "rows": written[0]})
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"queries": results, "peak_rss_kib": peak_kib, "version": duckdb.__version__}))


if __name__ == "__main__":
    main()
