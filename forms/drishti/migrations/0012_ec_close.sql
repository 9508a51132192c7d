-- ec_close: the form ec_close.
-- The original migrator's changeset 12, column for column.
CREATE TABLE ec_close (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    eligible_couple_id           varchar(255),
    close_reason                 varchar(255),
    other_close_reason           varchar(255),
    is_sterilization_death       varchar(255),
    sterilization_death_date     date,
    is_maternal_death            varchar(255),
    maternal_death_date          date,
    maternal_death_cause         varchar(255),
    other_maternal_death_cause   varchar(255),
    is_ec_close_confirmed        varchar(255),
    submission_date              date
);
