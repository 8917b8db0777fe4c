"""Drives auditx's Data Query API with Zuora's official Python SDK
(`zuora-sdk`, module `zuora_sdk`), as a Zuora customer would: submit, get,
list with a status filter, cancel, download, and a 404. Every response goes
through the SDK's own models; any response it cannot parse raises.

    python zuora_sdk_data_query.py <api base URL> <bearer token>

Prints one JSON object: what the SDK read (the Rust test asserts it).
`CHEAP_SQL` must be quick; `SLOW_SQL` must run long enough to be cancelled.
"""

import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
import zipfile

import zuora_sdk
from zuora_sdk import ApiClient, Configuration, DataQueriesApi
from zuora_sdk.exceptions import ApiException
from zuora_sdk.models.data_query_error_response import DataQueryErrorResponse
from zuora_sdk.models.submit_data_query_request import SubmitDataQueryRequest
from zuora_sdk.models.submit_data_query_request_output import SubmitDataQueryRequestOutput

DEADLINE = 120


def submit(api, query, output_format="CSV", compression="NONE", **fields):
    body = SubmitDataQueryRequest(
        query=query,
        output_format=output_format,
        compression=compression,
        output=SubmitDataQueryRequestOutput(target="S3"),
        **fields,
    )
    job = api.post_data_query_job(body).data
    assert job.query_status == "accepted", job
    assert job.id, job
    return job.id


def wait(api, job_id, statuses):
    end = time.monotonic() + DEADLINE
    while True:
        job = api.get_data_query_job(job_id).data
        if job.query_status in statuses:
            return job
        assert time.monotonic() < end, f"{job_id} still {job.query_status}"
        time.sleep(0.1)


def raw_delete(base, token, job_id):
    """DELETE /query/jobs/{id}: (status, body), errors included."""
    request = urllib.request.Request(
        f"{base}/query/jobs/{job_id}",
        method="DELETE",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def download(url):
    with urllib.request.urlopen(url) as response:
        return response.read()


def main():
    base, token = sys.argv[1], sys.argv[2]
    config = Configuration(host=base, access_token=token)
    api = DataQueriesApi(ApiClient(config))
    out = {"sdk": zuora_sdk.__version__}

    # Submit, follow to the end, download.
    cheap = submit(api, os.environ["CHEAP_SQL"])
    done = wait(api, cheap, {"completed", "failed", "cancelled"})
    assert done.query_status == "completed", done
    assert isinstance(done.output_rows, int) and isinstance(done.processing_time, int), done
    assert done.updated_on is not None and done.source_data == "LIVE", done
    out["csv"] = download(done.data_file).decode()
    out["outputRows"] = done.output_rows

    # DSV in a ZIP, through the SDK's own fields.
    zipped = submit(
        api, os.environ["CHEAP_SQL"], output_format="DSV", column_separator="|", compression="ZIP"
    )
    done = wait(api, zipped, {"completed", "failed", "cancelled"})
    assert done.query_status == "completed", done
    archive = zipfile.ZipFile(io.BytesIO(download(done.data_file)))
    assert archive.testzip() is None
    [entry] = archive.infolist()
    out["dsvInZip"] = archive.read(entry).decode()

    # List with a status filter.
    # The SDK refuses page sizes over 40 (the reference allows 1000).
    listed = api.get_data_query_jobs(query_status="completed", page_size=40).data
    out["completed"] = sorted(job.id for job in listed)
    assert cheap in out["completed"] and zipped in out["completed"], out

    # Cancel a running query.
    slow = submit(api, os.environ["SLOW_SQL"])
    wait(api, slow, {"in_progress", "completed", "failed", "cancelled"})
    # The SDK's delete_data_query_job sends only 64-character ids (Zuora's
    # reference gives the cancel's id that length): auditx takes its
    # 36-character id after 28 zeros, which is `zfill(64)` (docs/api.md).
    cancelled = api.delete_data_query_job(slow.zfill(64)).data
    out["cancelStatus"] = cancelled.query_status
    out["cancelledId"] = cancelled.id
    listed = api.get_data_query_jobs(query_status="cancelled").data
    out["cancelled"] = [job.id for job in listed]
    assert all(job.query_status == "cancelled" for job in listed), listed
    out["slow"] = slow

    # Cancelling it again: a 400 the SDK parses as DataQueryErrorResponse.
    try:
        api.delete_data_query_job(slow.zfill(64))
        raise AssertionError("an ended query was cancelled again")
    except ApiException as e:
        assert isinstance(e.data, DataQueryErrorResponse), (e.status, e.body)
        out["cancelAgain"] = {"status": e.status, "code": e.data.code, "message": e.data.message}
    # The 36-character id, over plain HTTP (the SDK does not send it).
    status, body = raw_delete(base, token, slow)
    error = DataQueryErrorResponse.from_json(body)
    out["cancelAgainById"] = {"status": status, "code": error.code, "message": error.message}

    # A missing job: a 404 the SDK parses as DataQueryErrorResponse.
    try:
        api.get_data_query_job("00000000-0000-0000-0000-000000000000")
        raise AssertionError("a missing job was found")
    except ApiException as e:
        assert isinstance(e.data, DataQueryErrorResponse), (e.status, e.body)
        out["missing"] = {"status": e.status, "code": e.data.code, "message": e.data.message}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
