"""Decodes Parquet export files (auditx's or DuckDB's) into CSV for the
bench's comparison: the export's columns in order, eventTime as UTC text
with milliseconds, rows in file order. Prints `{}`.

Usage: duckdb_decode.py OUT_CSV FILE...
"""

import json
import sys

import duckdb


def main():
    out, files = sys.argv[1], sys.argv[2:]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Rows in the order of the files and within them.
    con.execute("SET preserve_insertion_order = true")
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(
        f"""
        COPY (
          SELECT eventId, strftime(eventTime, '%Y-%m-%dT%H:%M:%S.%gZ') AS eventTime,
                 sessionId, runType, runStatus, operatorId, operatorType,
                 operatorName, errorCode, errorMessage, traceId, payload
          FROM read_parquet([{listed}])
        ) TO '{out}' (FORMAT csv, HEADER true)
        """
    )
    print(json.dumps({}))


if __name__ == "__main__":
    main()
