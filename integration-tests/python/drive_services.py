"""Drives both services through a Python client generated from proto/ with
grpcio-tools, proving the contracts work for a client in another language.

Run by integration-tests/tests/python_client.rs against the real binaries:

    PYTHONPATH=<grpcio>:<generated code> python3 drive_services.py \
        --etl 127.0.0.1:50051 --migrator 127.0.0.1:50052 --token TOKEN \
        --organisation UUID --source NAME --expect-written 4 ...

ETL: enable an organisation, follow WatchJobRun to the run's end, then read
GetJob and ListJobRuns. Migrator: wait for the source to drain, then read
GetStatus, ListAudits and ListErrors. Every result is checked; the script
exits 1 with the failed check on the first mismatch, 0 when all pass.
"""

import argparse
import sys
import time

import grpc

from avni.etl.v1 import etl_service_pb2 as etl
from avni.etl.v1 import etl_service_pb2_grpc as etl_grpc
from avni.migrator.v1 import forms_migrator_pb2 as mig
from avni.migrator.v1 import forms_migrator_pb2_grpc as mig_grpc

TIMEOUT = 60


class CheckFailed(Exception):
    pass


def check(condition, message):
    # Not `assert`: `python -O` would drop the checks.
    if not condition:
        raise CheckFailed(message)


def expect_status(call, code):
    try:
        call()
    except grpc.RpcError as error:
        check(error.code() == code, f"expected {code}, got {error.code()}: {error.details()}")
        return error
    raise CheckFailed(f"expected {code}, the call succeeded")


def drive_etl(channel, metadata, organisation, min_tables):
    stub = etl_grpc.EtlServiceStub(channel)
    entity = etl.Entity(uuid=organisation, type=etl.ENTITY_TYPE_ORGANISATION)

    # Without the token: refused, before anything happens.
    expect_status(
        lambda: stub.GetJob(etl.GetJobRequest(entity=entity), timeout=TIMEOUT),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    # A malformed uuid is a gRPC status with a message, not a crash.
    bad = expect_status(
        lambda: stub.GetJob(
            etl.GetJobRequest(entity=etl.Entity(uuid="not-a-uuid", type=etl.ENTITY_TYPE_ORGANISATION)),
            metadata=metadata,
            timeout=TIMEOUT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    check(bad.details(), "INVALID_ARGUMENT carries a message")

    enabled = stub.EnableAnalytics(
        etl.EnableAnalyticsRequest(entity=entity), metadata=metadata, timeout=TIMEOUT
    )
    check(enabled.created, "EnableAnalytics created the job")
    check(enabled.job.enabled, "the job is enabled")
    check(enabled.job.entity.uuid == organisation, f"the job is the organisation's: {enabled.job.entity}")

    events = list(
        stub.WatchJobRun(etl.WatchJobRunRequest(entity=entity), metadata=metadata, timeout=300)
    )
    kinds = [e.kind for e in events]
    check(events, "WatchJobRun streamed events")
    check(kinds[-1] == etl.RUN_EVENT_KIND_RUN_FINISHED, f"the stream ends with RUN_FINISHED: {kinds}")
    finished_tables = [e.table_name for e in events if e.kind == etl.RUN_EVENT_KIND_TABLE_FINISHED]
    started_tables = [e.table_name for e in events if e.kind == etl.RUN_EVENT_KIND_TABLE_STARTED]
    check(len(finished_tables) >= min_tables, f"at least {min_tables} tables finished: {finished_tables}")
    check(sorted(started_tables) == sorted(finished_tables), "every started table finished")
    run = events[-1].run
    check(run.status == etl.RUN_STATUS_SUCCEEDED, f"the run succeeded: {run.status} {run.error}")
    check(run.trigger == etl.RUN_TRIGGER_SCHEDULE, f"the first run is the scheduler's: {run.trigger}")
    check(len({e.run_id for e in events}) == 1, "one run's events")

    job = stub.GetJob(etl.GetJobRequest(entity=entity), metadata=metadata, timeout=TIMEOUT).job
    check(job.enabled, "GetJob: enabled")
    check(job.schema_name, "GetJob: a schema name")
    check(job.last_run.id == run.id, f"GetJob: last run is the watched one ({job.last_run.id} != {run.id})")
    check(job.last_run.status == etl.RUN_STATUS_SUCCEEDED, "GetJob: last run succeeded")
    check(
        sorted(t.table_name for t in job.last_run.tables) == sorted(finished_tables),
        "GetJob: the last run's tables are the finished ones",
    )
    rows = sum(t.rows_upserted for t in job.last_run.tables)
    check(rows > 0, "GetJob: rows were upserted")
    check(job.HasField("next_run_time"), "GetJob: the next run is scheduled")

    runs = stub.ListJobRuns(
        etl.ListJobRunsRequest(entity=entity, page_size=10), metadata=metadata, timeout=TIMEOUT
    ).runs
    check(len(runs) == 1, f"ListJobRuns: one run so far, got {len(runs)}")
    check(runs[0].id == run.id and runs[0].status == etl.RUN_STATUS_SUCCEEDED, "ListJobRuns: the run")
    print(
        f"etl: run {run.id} succeeded, {len(finished_tables)} tables, {rows} rows "
        f"into schema {job.schema_name!r}"
    )


def drive_migrator(channel, metadata, source, written, failed, watermark, error_forms):
    stub = mig_grpc.FormsMigratorStub(channel)
    expect_status(
        lambda: stub.GetStatus(mig.GetStatusRequest(source=source), timeout=TIMEOUT),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    deadline = time.monotonic() + TIMEOUT
    while True:
        status = stub.GetStatus(mig.GetStatusRequest(source=source), metadata=metadata, timeout=TIMEOUT)
        check(len(status.sources) == 1, f"GetStatus: one source, got {len(status.sources)}")
        s = status.sources[0]
        if s.watermark >= watermark and s.batch_in_progress == 0:
            break
        check(time.monotonic() < deadline, f"the source drains in time (watermark {s.watermark})")
        time.sleep(0.2)
    check(s.name == source, f"GetStatus: the source's name: {s.name}")
    check(s.watermark == watermark, f"GetStatus: watermark {s.watermark} == {watermark}")
    check(s.total_written == written, f"GetStatus: {s.total_written} written, expected {written}")
    check(s.total_failed == failed, f"GetStatus: {s.total_failed} failed, expected {failed}")
    check(s.unresolved_errors == failed, f"GetStatus: {s.unresolved_errors} unresolved errors")
    check(s.HasField("last_batch"), "GetStatus: the last batch")
    check(s.lag_millis == 0, f"GetStatus: caught up, lag {s.lag_millis}")

    audits = stub.ListAudits(
        mig.ListAuditsRequest(source=source, page_size=100), metadata=metadata, timeout=TIMEOUT
    ).audits
    check(audits, "ListAudits: at least one batch")
    check(audits[0].last_polled_timestamp == watermark, "ListAudits: newest batch first, at the watermark")
    check(
        sum(a.successfully_processed_form_entries for a in audits) == written,
        "ListAudits: written submissions add up",
    )
    check(sum(a.failed_form_entries for a in audits) == failed, "ListAudits: failures add up")

    errors = stub.ListErrors(
        mig.ListErrorsRequest(source=source, include_payload=True, page_size=100),
        metadata=metadata,
        timeout=TIMEOUT,
    ).errors
    check(len(errors) == failed, f"ListErrors: {len(errors)} errors, expected {failed}")
    check(
        sorted(e.form_name for e in errors) == sorted(error_forms),
        f"ListErrors: forms {sorted(e.form_name for e in errors)} != {sorted(error_forms)}",
    )
    for e in errors:
        check(e.failure_reason and e.detailed_reason, f"ListErrors: reasons for {e.instance_id}")
        check(e.raw_payload, f"ListErrors: the raw payload of {e.instance_id}")
        check(not e.HasField("resolved_time"), f"ListErrors: {e.instance_id} unresolved")
    reasons = {e.form_name: e.failure_reason for e in errors}
    print(f"migrator: {written} written, {failed} failed, watermark {watermark}, {len(audits)} batches")
    for form, reason in sorted(reasons.items()):
        print(f"  error: {form}: {reason}")
    return reasons


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--etl", required=True, help="etl-service host:port")
    parser.add_argument("--migrator", required=True, help="migrator-service host:port")
    parser.add_argument("--token", required=True)
    parser.add_argument("--organisation", required=True, help="uuid of an organisation to enable")
    parser.add_argument("--min-tables", type=int, default=1)
    parser.add_argument("--source", required=True)
    parser.add_argument("--expect-written", type=int, required=True)
    parser.add_argument("--expect-failed", type=int, required=True)
    parser.add_argument("--expect-watermark", type=int, required=True)
    parser.add_argument("--expect-error-forms", default="", help="comma-separated form names")
    args = parser.parse_args()
    metadata = (("authorization", f"Bearer {args.token}"),)
    error_forms = [f for f in args.expect_error_forms.split(",") if f]
    try:
        with grpc.insecure_channel(args.etl) as channel:
            drive_etl(channel, metadata, args.organisation, args.min_tables)
        with grpc.insecure_channel(args.migrator) as channel:
            drive_migrator(
                channel,
                metadata,
                args.source,
                args.expect_written,
                args.expect_failed,
                args.expect_watermark,
                error_forms,
            )
    except CheckFailed as failure:
        print(f"python client: check failed: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(f"python client: call failed: {error.code()}: {error.details()}", file=sys.stderr)
        return 1
    print("python client: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
