-- fp_referral_followup: the form fp_referral_followup.
-- The original migrator's changeset 34, column for column.
CREATE TABLE fp_referral_followup (
    id                                       bigserial PRIMARY KEY,
    anm_id                                   varchar(255),
    instance_id                              varchar(255),
    entity_id                                varchar(255),
    form_name                                varchar(255),
    client_version                           timestamp,
    server_version                           timestamp,
    form_data_definition_version             varchar(255),
    eligible_couple_id                       varchar(255),
    referral_followup_date                   date,
    couple_went_for_referral                 varchar(255),
    referral_result                          varchar(255),
    reason_for_couple_not_going_for_referral varchar(255),
    new_treatment_plan                       varchar(255),
    referral_place                           varchar(255),
    needs_referral_followup                  varchar(255),
    needs_followup                           varchar(255),
    submission_date                          date
);
