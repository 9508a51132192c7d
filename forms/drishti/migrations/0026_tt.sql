-- tt: the forms tt, tt_1, tt_2, tt_booster.
-- The original migrator's changeset 26, column for column.
CREATE TABLE tt (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    mother_id                    varchar(255),
    tt_dose                      varchar(255),
    tt_injection_place           varchar(255),
    tt_date                      date,
    submission_date              date
);
