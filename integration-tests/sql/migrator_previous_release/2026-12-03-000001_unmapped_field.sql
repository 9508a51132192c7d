-- Fields that submissions carried and their table has no column for. Such a
-- submission is written with the fields that have columns (its whole raw
-- element stays in form_submission); each field is counted here, per source,
-- so an operator knows which migration to write, and RefillColumns fills the
-- column from the archive once it exists (resolved_at).
CREATE TABLE unmapped_field (
    id                  bigserial   PRIMARY KEY,
    source              text        NOT NULL,
    form_name           text        NOT NULL,
    -- '' for a field of the form itself, else the sub-form's name.
    sub_form_name       text        NOT NULL DEFAULT '',
    field_name          text        NOT NULL,
    -- Where the value would go: the table and the column the naming gives.
    table_name          text        NOT NULL,
    column_name         text        NOT NULL,
    -- Submissions written that carried a value for the field.
    submissions         bigint      NOT NULL,
    first_seen          timestamptz NOT NULL DEFAULT now(),
    last_seen           timestamptz NOT NULL DEFAULT now(),
    example_instance_id text        NOT NULL,
    resolved_at         timestamptz,
    CONSTRAINT unmapped_field_key UNIQUE (source, form_name, sub_form_name, field_name)
);
