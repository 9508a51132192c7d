-- pnc_child_visit: the sub-form child_pnc_visit of the form pnc_visit (one row per instance).
-- The original migrator's changeset 30, column for column.
CREATE TABLE pnc_child_visit (
    id                        bigserial PRIMARY KEY,
    sub_form_name             varchar(255),
    child_id                  varchar(255),
    gender                    varchar(255),
    weight                    decimal,
    immunizations_given       varchar(255),
    urine_stool_problems      varchar(255),
    days_of_diarrhea          varchar(255),
    blood_in_stool            varchar(255),
    activity_problems         varchar(255),
    breathing_problems        varchar(255),
    respiration_rate          decimal,
    skin_problems             varchar(255),
    has_fever_symptoms        varchar(255),
    temperature               decimal,
    child_exclusive_bf        varchar(255),
    immediate_referral        varchar(255),
    immediate_referral_reason varchar(255),
    is_child_high_risk        varchar(255),
    pnc_visit_id              bigint CONSTRAINT fk_pnc_child_visit_pnc_visit_id REFERENCES pnc_visit (id)
);
