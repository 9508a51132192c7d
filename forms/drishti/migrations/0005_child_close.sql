-- child_close: the form child_close.
-- The original migrator's changeset 5, column for column.
CREATE TABLE child_close (
    id                              bigserial PRIMARY KEY,
    anm_id                          varchar(255),
    instance_id                     varchar(255),
    entity_id                       varchar(255),
    form_name                       varchar(255),
    client_version                  timestamp,
    server_version                  timestamp,
    form_data_definition_version    varchar(255),
    child_id                        varchar(255),
    close_reason                    varchar(255),
    number_of_living_children       decimal,
    is_immunization_death           varchar(255),
    death_cause                     varchar(255),
    other_death_cause               varchar(255),
    death_date                      date,
    is_close_confirmed              varchar(255),
    submission_date                 date,
    child_mother_eligible_couple_id varchar(255)
);
