-- anc_investigations: the form anc_investigations.
-- The original migrator's changeset 33, column for column.
CREATE TABLE anc_investigations (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    mother_id                    varchar(255),
    test_date                    date,
    test_results_to_enter        varchar(255),
    woman_blood_group            varchar(255),
    rh_incompatible_couple       varchar(255),
    tests_result_positive        varchar(255),
    bile_salts                   varchar(255),
    bile_pigments                varchar(255),
    submission_date              date
);
