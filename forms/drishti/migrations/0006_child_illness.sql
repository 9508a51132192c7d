-- child_illness: the form child_illness.
-- The original migrator's changeset 6, column for column.
CREATE TABLE child_illness (
    id                           bigserial PRIMARY KEY,
    anm_id                       varchar(255),
    instance_id                  varchar(255),
    entity_id                    varchar(255),
    form_name                    varchar(255),
    client_version               timestamp,
    server_version               timestamp,
    form_data_definition_version varchar(255),
    child_id                     varchar(255),
    sick_visit_date              date,
    date_of_birth                date,
    child_signs                  varchar(255),
    child_signs_other            varchar(255),
    immediate_referral           varchar(255),
    immediate_referral_reason    varchar(255),
    report_child_disease         varchar(255),
    report_child_disease_other   varchar(255),
    report_child_disease_date    date,
    report_child_disease_place   varchar(255),
    number_of_ors_given          decimal,
    child_referral               varchar(255),
    submission_date              date
);
