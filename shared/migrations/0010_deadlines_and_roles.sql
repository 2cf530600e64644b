-- Issue 13 (deadlines per the law, owner-only privacy operations).
-- CCPA (11 CCR 7021(a)): receipt confirmed within 10 business days. The job records by when,
-- and when the confirmation was issued (its SendEmail written with the job, in one
-- transaction; the notifier records the delivery).
ALTER TABLE lethe.jobs ADD COLUMN receipt_due_at timestamptz;
ALTER TABLE lethe.jobs ADD COLUMN receipt_confirmed_at timestamptz;
-- An extension's notice to the requester (GDPR Art. 12(3), 11 CCR 7021(b)), issued with it.
ALTER TABLE lethe.jobs ADD COLUMN extension_notified_at timestamptz;

-- Erasure and export requests are owner-only unless an owner delegates subject-level
-- requests to admins (audited: OrgDelegationChanged).
ALTER TABLE lethe.organisations
    ADD COLUMN admins_submit_subject_requests boolean NOT NULL DEFAULT false;
