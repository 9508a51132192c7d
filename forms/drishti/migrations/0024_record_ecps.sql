-- record_ecps: the form record_ecps.
-- The original migrator's changeset 24, column for column.
CREATE TABLE record_ecps (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    eligible_couple_id           varchar(255),
    number_of_ec_ps_given        decimal,
    ecp_date                     date,
    submission_date              date
);
