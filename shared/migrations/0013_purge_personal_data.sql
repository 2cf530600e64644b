-- Personal data leaves with the job (issue 15, item 6).
--
-- 1. The requester's address (lethe.jobs.requester_email) is kept while a notice may still
--    need it (deadline reminders, an extension notice: both only for jobs not yet final) and
--    nulled once the job reaches a final state. The workers send their own closing notices
--    from their own sealed copy. A trigger, so that every path to a final state forgets it
--    (progress events, a cancel by intake). The list is shared.lifecycle.FINAL
--    (tests/unit/test_purge_migration.py keeps the two equal).
CREATE FUNCTION lethe.jobs_forget_requester() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('completed', 'completed_with_errors', 'failed', 'cancelled', 'restored',
                      'expired', 'not_found', 'ambiguous') THEN
        NEW.requester_email := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_forget_requester BEFORE INSERT OR UPDATE ON lethe.jobs
    FOR EACH ROW EXECUTE FUNCTION lethe.jobs_forget_requester();
UPDATE lethe.jobs SET requester_email = NULL
    WHERE requester_email IS NOT NULL
      AND status IN ('completed', 'completed_with_errors', 'failed', 'cancelled', 'restored',
                     'expired', 'not_found', 'ambiguous');

-- 2. An expired export's object key goes with its object and its data key.
ALTER TABLE lethe.exports ALTER COLUMN object_key DROP NOT NULL;
UPDATE lethe.exports SET object_key = NULL WHERE status = 'expired';

-- 3. A purged erasure keeps counts, not the keys of the rows and objects it erased: the
--    chunks' key lists are emptied and its object records deleted, except `kept` ones
--    (delete_media=false: those objects are still in the bucket by the request's choice, and
--    the record says which). The eraser does the same at each purge and full restore.
UPDATE lethe.erase_chunks c SET keys = '{}'
    FROM lethe.erase_tasks t
    WHERE t.job_id = c.job_id AND t.purged_at IS NOT NULL AND cardinality(c.keys) > 0;
DELETE FROM lethe.erase_objects o USING lethe.erase_tasks t
    WHERE t.job_id = o.job_id AND t.purged_at IS NOT NULL AND o.state <> 'kept';

-- Subject hashes are keyed per organisation from now on (shared/hashing.py). Jobs recorded
-- before keep their old hash: the identities are gone, so it cannot be recomputed. Hashes are
-- only compared within one organisation, so old and new rows coexist. The request
-- fingerprints (jobs.request_fingerprint, the OpenDSR one) are per organisation as well: a
-- request id sent again after the upgrade with a body first sent before it is answered as
-- another body (409), the safe side.
