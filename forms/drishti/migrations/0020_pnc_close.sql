-- pnc_close: the form pnc_close.
-- The original migrator's changeset 20, column for column.
CREATE TABLE pnc_close (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    mother_id                    varchar(255),
    close_reason                 varchar(255),
    death_date                   date,
    is_maternal_death            varchar(255),
    maternal_death_cause         varchar(255),
    other_maternal_death_cause   varchar(255),
    is_pnc_close_confirmed       varchar(255),
    submission_date              date
);
