-- renew_fp_product: the form renew_fp_product.
-- The original migrator's changeset 25, column for column.
CREATE TABLE renew_fp_product (
    id                                                bigserial PRIMARY KEY,
    anm_id                                            varchar(255),
    instance_id                                       varchar(255),
    entity_id                                         varchar(255),
    form_name                                         varchar(255),
    client_version                                    timestamp,
    server_version                                    timestamp,
    form_data_definition_version                      varchar(255),
    eligible_couple_id                                varchar(255),
    current_method                                    varchar(255),
    fp_renew_method_visit_date                        date,
    was_fp_method_renewed                             varchar(255),
    dmpa_injection_date                               date,
    number_of_condoms_supplied                        decimal,
    number_of_ocp_delivered                           decimal,
    number_of_centchroman_pills_supplied              decimal,
    ocp_refill_date                                   date,
    reason_for_not_renewal_of_fp_product              varchar(255),
    reason_for_couple_to_refuse_renewal_of_fp_product varchar(255),
    submission_date                                   date
);
