-- A bulk subject whose subject already has an open job is linked to that job (duplicate
-- detection) and follows its outcome: several bulk rows (two rows of one list, or two bulks)
-- may now name the same job, so the index on job_id is no longer unique.
DROP INDEX lethe.bulk_subjects_job;
CREATE INDEX bulk_subjects_job ON lethe.bulk_subjects (job_id) WHERE job_id IS NOT NULL;
