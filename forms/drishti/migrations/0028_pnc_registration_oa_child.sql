-- pnc_registration_oa_child: the sub-form child_registration_oa of the form pnc_registration_oa (one row per instance).
-- The original migrator's changeset 28, column for column.
CREATE TABLE pnc_registration_oa_child (
    id                      bigserial PRIMARY KEY,
    sub_form_name           varchar(255),
    child_id                varchar(255),
    gender                  varchar(255),
    weight                  decimal,
    blood_group             varchar(255),
    immunizations_given     varchar(255),
    is_child_high_risk1     varchar(255),
    is_child_high_risk      varchar(255),
    child_high_risk_reasons varchar(255),
    pnc_registration_oa_id  bigint CONSTRAINT fk_pnc_registration_oa_child_pnc_registration_oa_id REFERENCES pnc_registration_oa (id)
);
