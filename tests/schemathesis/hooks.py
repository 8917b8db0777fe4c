"""Schemathesis hooks for auditx: the cross-field rules OpenAPI cannot state.

Three request rules of the API are not expressible in a JSON schema, so
schema-valid (positive) cases would be refused with a 400 for reasons the
schema cannot show. The hooks adjust only those cases; negative cases keep
whatever makes them invalid, so the API's rejections are still checked.

- createExport, listAuditEntries (query) and summarizeAuditEntries (JSON
  body): queryFromTime must be before queryToTime.
- submitQuery: `query` must be one read-only SELECT over the tenant tables;
  a schema-valid string becomes one of a few such queries. DSV needs a
  `columnSeparator` (one is added when missing), and a string
  `encryptionKey` must be an RSA public key (it becomes the sample key of
  Zuora's encryption doc).
- listAuditEntries: `cursor` is an opaque, signed token only the API issues
  (a previous page's nextPage); a schema-valid cursor (a non-empty string)
  is dropped, so the case asks for the first page. An empty cursor stays:
  it is schema-invalid and must be refused.

One check of its own, `cancel_refused_only_when_ended`: the only 400
positive_data_acceptance lets through (schemathesis.toml) is cancelQuery's
documented one for a query that has ended.
"""

from datetime import datetime, timedelta

import schemathesis

VALID_QUERIES = [
    "SELECT count(*) AS n FROM auditloginevent",
    "SELECT username, status FROM auditloginevent WHERE status = 'Success' LIMIT 10",
    "SELECT action, count(*) AS n FROM auditsettingchangeevent GROUP BY action",
    "SELECT objecttype, objectid FROM auditobjectchangeevent ORDER BY createddate DESC LIMIT 5",
]


def _operation(ctx):
    operation = ctx.operation
    return operation.definition.raw.get("operationId") if operation is not None else None


def _parse(text):
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def ordered_time_range(query):
    if not isinstance(query, dict):
        return
    start, end = _parse(query.get("queryFromTime")), _parse(query.get("queryToTime"))
    if start is not None and end is not None and start >= end:
        try:
            query["queryToTime"] = (start + timedelta(hours=1)).isoformat()
        except OverflowError:
            query["queryFromTime"] = (end - timedelta(hours=1)).isoformat()


SAMPLE_RSA_KEY = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCHRHXrqriUa5nkXP6tvCv3uQtH5fYezHFZ8kXeK2LWTmY6i7FG"
    "zRcDlDpuY72iLTPTqbYKyky1EhTlr/UaMn1tugb+wVbWJ81AnisAxCDmnkbMwkfqPHxNlu+Tg2OXtgFd4QCENAgH"
    "t/DOqD9HQV+5KHp59DdoD2BzpNf63b3D1QIDAQAB"
)


def runnable_sql(body):
    if not isinstance(body, dict):
        return
    text = body.get("query")
    if isinstance(text, str) and 1 <= len(text.encode()) <= 65536 and text.strip():
        body["query"] = VALID_QUERIES[len(text) % len(VALID_QUERIES)]
    output_format = body.get("outputFormat")
    if isinstance(output_format, str) and output_format.upper() == "DSV":
        if body.get("columnSeparator") is None:
            body["columnSeparator"] = "|"
    if isinstance(body.get("encryptionKey"), str):
        body["encryptionKey"] = SAMPLE_RSA_KEY


def issued_cursor_only(query):
    if isinstance(query, dict) and isinstance(query.get("cursor"), str) and query["cursor"]:
        del query["cursor"]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Runs in every phase (coverage, fuzzing, stateful), just before the call."""
    operation = _operation(ctx)
    if operation == "createExport":
        ordered_time_range(case.query)
    elif operation == "listAuditEntries":
        ordered_time_range(case.query)
        issued_cursor_only(case.query)
    elif operation == "summarizeAuditEntries":
        ordered_time_range(case.body)
    elif operation == "submitQuery":
        runnable_sql(case.body)


@schemathesis.check
def cancel_refused_only_when_ended(ctx, response, case):
    """cancelQuery's one documented 400 for valid data: the query has ended.

    Zuora's reference answers 400 to cancelling a data query that is no
    longer accepted or in_progress (`delete_dataqueryjob.md`); auditx does
    the same and documents it. schemathesis.toml lets positive_data_acceptance
    take a 400 from cancelQuery; this check makes sure such a 400 is that
    case and no other.
    """
    operation_id = case.operation.definition.raw.get("operationId")
    if operation_id != "cancelQuery" or response.status_code != 400:
        return None
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    try:
        message = response.json().get("message", "")
    except ValueError:
        message = ""
    if " is already " not in message:
        raise AssertionError(f"cancelQuery refused valid data for another reason: {message!r}")
    return None
