ALTER TABLE migration_audit
    DROP COLUMN IF EXISTS batch_size,
    DROP COLUMN IF EXISTS next_poll_timestamp;
