-- hb_test: the form hb_test.
-- The original migrator's changeset 18, column for column.
CREATE TABLE hb_test (
    id                                 bigserial PRIMARY KEY,
    anm_id                             varchar(255),
    instance_id                        varchar(255),
    entity_id                          varchar(255),
    form_name                          varchar(255),
    client_version                     timestamp,
    server_version                     timestamp,
    form_data_definition_version       varchar(255),
    mother_id                          varchar(255),
    hb_test_date                       date,
    hb_test_place                      varchar(255),
    hb_level                           decimal,
    anaemic_status                     varchar(255),
    high_risk_reason                   varchar(255),
    is_high_risk_till_delivery         varchar(255),
    is_high_risk_till_delivery_reason  varchar(255),
    is_high_risk_till_pnc_close        varchar(255),
    is_high_risk_till_pnc_close_reason varchar(255),
    is_high_risk                       varchar(255),
    submission_date                    date
);
