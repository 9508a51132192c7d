-- child_immunizations: the form child_immunizations.
-- The original migrator's changeset 7, column for column.
CREATE TABLE child_immunizations (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    child_id                     varchar(255),
    previous_immunizations       varchar(255),
    immunizations_received       varchar(255),
    immunizations_given          varchar(255),
    immunization_date            date,
    immunization_place           varchar(255),
    submission_date              date,
    date_of_birth                date
);
