-- Where the next poll of a source starts. It is the batch's highest
-- serverVersion, except after a full batch: then it is one millisecond less,
-- because submissions sharing that serverVersion may continue on the next
-- page and the upstream returns only serverVersion > timestamp. Kept with the
-- batch so a restart resumes exactly where the committed work ends.
ALTER TABLE migration_audit
    ADD COLUMN next_poll_timestamp bigint,
    ADD COLUMN batch_size integer;

