-- vitamin_a: the form vitamin_a.
-- The original migrator's changeset 27, column for column.
CREATE TABLE vitamin_a (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    child_id                     varchar(255),
    date_of_birth                date,
    vitamin_a_dose               decimal,
    vitamin_a_date               date,
    vitamin_a_place              varchar(255),
    submission_date              date
);
