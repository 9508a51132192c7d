-- delivery_out_come_child_registration: the sub-form child_registration of the form delivery_outcome (one row per instance).
-- The original migrator's changeset 29, column for column.
CREATE TABLE delivery_out_come_child_registration (
    id                            bigserial PRIMARY KEY,
    sub_form_name                 varchar(255),
    child_id                      varchar(255),
    gender                        varchar(255),
    weight                        decimal,
    blood_group                   varchar(255),
    immunizations_given           varchar(255),
    is_child_high_risk1           varchar(255),
    is_child_high_risk            varchar(255),
    child_high_risk_reasons       varchar(255),
    hep_b                         varchar(255),
    is_hep_b_prophylaxis_provided varchar(255),
    lbw                           varchar(255),
    vlbw                          varchar(255),
    premature                     varchar(255),
    delivery_outcome_id           bigint CONSTRAINT fk_delivery_out_come_child_registration_delivery_outcome_id REFERENCES delivery_outcome (id)
);
