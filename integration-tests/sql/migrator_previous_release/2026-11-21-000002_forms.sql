-- Form tables for the forms of the sample upstream page. One table per form,
-- named after formName; one column per field, snake_case; the field `id` goes to
-- <bind_type>_id. A new form or column is a new migration, never a change here.
-- The service reads these tables' columns and types from the catalog.

CREATE TABLE ec_registration (
    id                           bigserial   PRIMARY KEY,
    anm_id                       text,
    instance_id                  text        NOT NULL UNIQUE,
    entity_id                    text,
    form_name                    text,
    client_version               timestamptz,
    server_version               timestamptz,
    form_data_definition_version text,
    eligible_couple_id           text,
    wife_name                    text,
    husband_name                 text,
    wife_age                     integer,
    number_of_living_children    integer,
    registration_date            date,
    family_planning_method       text
);

CREATE TABLE anc_registration (
    id                           bigserial   PRIMARY KEY,
    anm_id                       text,
    instance_id                  text        NOT NULL UNIQUE,
    entity_id                    text,
    form_name                    text,
    client_version               timestamptz,
    server_version               timestamptz,
    form_data_definition_version text,
    mother_id                    text,
    ec_id                        text,
    lmp                          date,
    edd                          date,
    is_high_risk                 boolean,
    weight                       numeric,
    height                       numeric
);

CREATE TABLE anc_visit (
    id                           bigserial   PRIMARY KEY,
    anm_id                       text,
    instance_id                  text        NOT NULL UNIQUE,
    entity_id                    text,
    form_name                    text,
    client_version               timestamptz,
    server_version               timestamptz,
    form_data_definition_version text,
    mother_id                    text,
    anc_visit_number             integer,
    anc_visit_date               date,
    bp_systolic                  integer,
    bp_diastolic                 integer,
    hb_level                     numeric,
    next_visit_date              date
);

CREATE TABLE pnc_visit (
    id                           bigserial   PRIMARY KEY,
    anm_id                       text,
    instance_id                  text        NOT NULL UNIQUE,
    entity_id                    text,
    form_name                    text,
    client_version               timestamptz,
    server_version               timestamptz,
    form_data_definition_version text,
    mother_id                    text,
    discharge_date               date,
    visit_date                   date,
    delivery_outcome             text
);

-- Sub-form of pnc_visit: one row per child, linked to its parent row.
CREATE TABLE child_pnc_visit (
    id            bigserial PRIMARY KEY,
    pnc_visit_id  bigint    NOT NULL REFERENCES pnc_visit (id) ON DELETE CASCADE,
    child_id      text,
    weight        numeric,
    temperature   numeric,
    gender        text
);
CREATE INDEX child_pnc_visit_parent_idx ON child_pnc_visit (pnc_visit_id);
