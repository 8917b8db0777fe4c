"""The DuckDB side of `auditx bench`: the query that yields an export's rows.

Reads the same Parquet files of the lake that auditx exports from, applies the
export's filters, joins each row's run to the status of the run's latest
status change, orders by (eventTime, eventId) and writes CSV with the
export's header. Prints one JSON line: seconds, peak RSS, DuckDB's version.

Usage: duckdb_export.py LAKE_DIR TENANT METER FROM_MS TO_MS EXPORT_TYPE RUN_TYPE OUT_CSV
"""

import json
import resource
import sys
import time

import duckdb


def main():
    lake, tenant, meter, from_ms, to_ms, export_type, run_type, out = sys.argv[1:9]
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
                 strftime(a.eventTime, '%Y-%m-%dT%H:%M:%S.%gZ') AS eventTime,
                 a.sessionId, a.runType, l.runStatus, a.operatorId,
                 a.operatorType, a.operatorName, a.errorCode, a.errorMessage,
                 a.traceId, a.payload
          FROM read_parquet('{audit}') a
          LEFT JOIN latest l USING (sessionId)
          WHERE a.eventTime >= make_timestamptz({int(from_ms)} * 1000)
            AND a.eventTime < make_timestamptz({int(to_ms)} * 1000)
            AND a.recordType = '{export_type}' AND a.runType = '{run_type}'
          ORDER BY a.eventTime, a.eventId
        ) TO '{out}' (FORMAT csv, HEADER true)
        """
    )
    seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_kib": peak_kib, "version": duckdb.__version__}))


if __name__ == "__main__":
    main()
