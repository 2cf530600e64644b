"""Intake's SQL, by area; every function is re-exported here (`store.get_job(...)`).

orgs: organisations and API keys · jobs: job rows and reads · timeline: progress folded
into jobs and their events · outbox: events for the relay · opendsr: OpenDSR requests ·
rebuild: a job's state recomputed from its events · tasks: a job's manual tasks ·
reports: the compliance report's figures ·
schedules: retention policies, scheduled jobs and runs, reminders · web: sessions and
progress snapshots · auth_failures: refused requests counted per source and minute.
"""

from services.intake.store.db import Db
from services.intake.store.jobs import (
    count_jobs,
    extend_job,
    get_job,
    insert_job,
    insert_jobs,
    job_by_request,
    job_events,
    jobs_by_state,
    list_jobs,
    mark_cancelled,
    requester_email,
)
from services.intake.store.opendsr import opendsr_request, record_opendsr
from services.intake.store.orgs import (
    caller_for_key,
    create_api_key,
    create_org,
    get_org,
    hash_key,
    list_api_keys,
    revoke_api_key,
    set_delegation,
)
from services.intake.store.outbox import (
    add_outbox,
    add_outbox_many,
    delete_outbox,
    take_back_export,
    take_outbox,
)
from services.intake.store.rebuild import add_to_timeline, job_state, job_timeline, write_state
from services.intake.store.reports import compliance_figures
from services.intake.store.schedules import (
    due_reminders,
    has_run,
    insert_retention_job,
    lock_org,
    org_ids,
    policies_of,
    policy_overrides,
    recent_runs,
    record_reminder,
    record_run,
    try_lead,
    unlock_all,
    upsert_policies,
)
from services.intake.store.tasks import (
    close_task,
    complete_after_tasks,
    due_task_reminders,
    job_tasks,
    mark_reminded,
    open_task_count,
    open_tasks,
    purge_report,
)
from services.intake.store.timeline import (
    OnCompleted,
    apply_progress,
    fold,
    record_event,
    record_events,
)
from services.intake.store.web import (
    close_session,
    job_any_org,
    open_session,
    progress_rows,
    session_caller,
)

__all__ = [
    "Db",
    "OnCompleted",
    "add_outbox",
    "add_outbox_many",
    "add_to_timeline",
    "apply_progress",
    "caller_for_key",
    "close_session",
    "close_task",
    "complete_after_tasks",
    "compliance_figures",
    "count_jobs",
    "create_api_key",
    "create_org",
    "delete_outbox",
    "due_reminders",
    "due_task_reminders",
    "extend_job",
    "fold",
    "get_job",
    "get_org",
    "has_run",
    "hash_key",
    "insert_job",
    "insert_jobs",
    "insert_retention_job",
    "job_any_org",
    "job_by_request",
    "job_events",
    "job_state",
    "job_tasks",
    "job_timeline",
    "jobs_by_state",
    "list_api_keys",
    "list_jobs",
    "lock_org",
    "mark_cancelled",
    "mark_reminded",
    "open_session",
    "open_task_count",
    "open_tasks",
    "opendsr_request",
    "org_ids",
    "policies_of",
    "policy_overrides",
    "progress_rows",
    "purge_report",
    "recent_runs",
    "record_event",
    "record_events",
    "record_opendsr",
    "record_reminder",
    "record_run",
    "requester_email",
    "revoke_api_key",
    "session_caller",
    "set_delegation",
    "take_back_export",
    "take_outbox",
    "try_lead",
    "unlock_all",
    "upsert_policies",
    "write_state",
]
