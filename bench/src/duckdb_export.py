"""The DuckDB side of `auditx bench`: the query that yields an export's rows.

Reads the same Parquet files of the lake that auditx exports from, applies the
export's filters, joins each row's run to the status of the run's latest
status change, orders by (eventTime, eventId) and writes the export's
format: CSV with the export's header, JSON Lines (eventTime as the CSV's
text, payload the JSON value) or Parquet (eventTime a UTC timestamp).
Prints one JSON line: seconds, peak RSS, DuckDB's version.

Usage: duckdb_export.py LAKE_DIR TENANT METER FROM_MS TO_MS EXPORT_TYPE RUN_TYPE OUT [csv|jsonl|parquet]
"""

import json
import resource
import sys
import time

import duckdb


def main():
    lake, tenant, meter, from_ms, to_ms, export_type, run_type, out = sys.argv[1:9]
    fmt = sys.argv[9] if len(sys.argv) > 9 else "csv"
    event_time = "strftime(a.eventTime, '%Y-%m-%dT%H:%M:%S.%gZ')"
    payload = "a.payload"
    if fmt == "csv":
        options = "FORMAT csv, HEADER true"
    elif fmt == "jsonl":
        options = "FORMAT json"
        payload = "a.payload::JSON"
    elif fmt == "parquet":
        options = "FORMAT parquet"
        event_time = "a.eventTime"
    else:
        sys.exit(f"unknown format {fmt}")
    audit = f"{lake}/meter_audit_trail/tenant={tenant}/meter={meter}/**/*.parquet"
    runs = f"{lake}/meter_runs/tenant={tenant}/meter={meter}/**/*.parquet"
    started = time.monotonic()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # A run's status is the one of its latest status change.
    con.execute(
        f"""
        COPY (
          WITH latest AS (
            SELECT sessionId, arg_max(status, updatedAt) AS runStatus
            FROM read_parquet('{runs}') GROUP BY sessionId
          )
          SELECT a.eventId,
                 {event_time} AS eventTime,
                 a.sessionId, a.runType, l.runStatus, a.operatorId,
                 a.operatorType, a.operatorName, a.errorCode, a.errorMessage,
                 a.traceId, {payload} AS payload
          FROM read_parquet('{audit}') a
          LEFT JOIN latest l USING (sessionId)
          WHERE a.eventTime >= make_timestamptz({int(from_ms)} * 1000)
            AND a.eventTime < make_timestamptz({int(to_ms)} * 1000)
            AND a.recordType = '{export_type}' AND a.runType = '{run_type}'
          ORDER BY a.eventTime, a.eventId
        ) TO '{out}' ({options})
        """
    )
    seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_kib": peak_kib, "version": duckdb.__version__}))


if __name__ == "__main__":
    main()
