-- ifa: the form ifa.
-- The original migrator's changeset 19, column for column.
CREATE TABLE ifa (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    mother_id                    varchar(255),
    ifa_tablets_place            varchar(255),
    number_of_ifa_tablets_given  decimal,
    ifa_tablets_date             date,
    submission_date              date
);
