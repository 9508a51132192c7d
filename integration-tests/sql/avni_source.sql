-- The subset of Avni's schema that the ETL reads (design/etl.md §1), with
-- Avni's own table and column names and types, so the ETL runs against a real
-- Avni database too. Tests, the demo and benchmarks load it into a fresh
-- database and fill it with the generator in integration-tests/src/avni.
-- The ETL itself never creates or alters these tables.

CREATE TABLE organisation (
    id              serial PRIMARY KEY,
    uuid            varchar(255) NOT NULL UNIQUE,
    name            varchar(255) NOT NULL,
    db_user         varchar(255) NOT NULL,
    schema_name     varchar(255) NOT NULL,
    parent_organisation_id integer REFERENCES organisation (id),
    is_voided       boolean      NOT NULL DEFAULT false
);

CREATE TABLE organisation_group (
    id              serial PRIMARY KEY,
    uuid            varchar(255) NOT NULL UNIQUE,
    name            varchar(255) NOT NULL,
    db_user         varchar(255) NOT NULL,
    schema_name     varchar(255) NOT NULL,
    has_analytics_db boolean     NOT NULL DEFAULT false
);

CREATE TABLE organisation_group_organisation (
    id                     serial PRIMARY KEY,
    name                   varchar(255),
    organisation_group_id  integer NOT NULL REFERENCES organisation_group (id),
    organisation_id        integer NOT NULL REFERENCES organisation (id)
);

-- The users' audit columns default to a fixed time: the generator's rows
-- are a function of its seed.
CREATE TABLE users (
    id               bigserial PRIMARY KEY,
    uuid             varchar(255) NOT NULL UNIQUE,
    username         varchar(255) NOT NULL UNIQUE,
    organisation_id  integer REFERENCES organisation (id),
    is_voided        boolean NOT NULL DEFAULT false,
    catchment_id     integer,
    email            varchar(320),
    phone_number     varchar(32),
    name             varchar(255),
    created_by_id    bigint,
    last_modified_by_id bigint,
    created_date_time timestamptz(3) NOT NULL DEFAULT '2025-01-01 00:00:00+00',
    last_modified_date_time timestamptz(3) NOT NULL DEFAULT '2025-01-01 00:00:00+00'
);
CREATE INDEX users_org_lmdt_idx ON users (organisation_id, last_modified_date_time);

-- Metadata tables share Avni's audit columns.
CREATE TABLE gender (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255) NOT NULL,
    organisation_id  integer NOT NULL REFERENCES organisation (id),
    is_voided        boolean NOT NULL DEFAULT false
);

CREATE TABLE concept (
    id                       serial PRIMARY KEY,
    uuid                     varchar(255) NOT NULL,
    name                     varchar(255) NOT NULL,
    data_type                varchar(255) NOT NULL,
    is_voided                boolean      NOT NULL DEFAULT false,
    organisation_id          integer      NOT NULL REFERENCES organisation (id),
    created_by_id            bigint       NOT NULL REFERENCES users (id),
    last_modified_by_id      bigint       NOT NULL REFERENCES users (id),
    created_date_time        timestamptz(3) NOT NULL DEFAULT now(),
    last_modified_date_time  timestamptz(3) NOT NULL DEFAULT now(),
    CONSTRAINT concept_uuid_org_unique UNIQUE (uuid, organisation_id)
);
CREATE INDEX concept_uuid_idx ON concept (uuid);

CREATE TABLE concept_answer (
    id                 serial PRIMARY KEY,
    uuid               varchar(255) NOT NULL,
    concept_id         integer NOT NULL REFERENCES concept (id),
    answer_concept_id  integer NOT NULL REFERENCES concept (id),
    answer_order       double precision NOT NULL,
    is_voided          boolean NOT NULL DEFAULT false,
    organisation_id    integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE subject_type (
    id                 serial PRIMARY KEY,
    uuid               varchar(255) NOT NULL,
    name               varchar(255) NOT NULL,
    -- Both nullable, as in avni-server's schema (its own organisation-1
    -- "Individual" row has no type).
    type               varchar(255),
    allow_middle_name  boolean DEFAULT false,
    is_voided          boolean NOT NULL DEFAULT false,
    organisation_id    integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE operational_subject_type (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255),
    subject_type_id  integer NOT NULL REFERENCES subject_type (id),
    organisation_id  integer NOT NULL REFERENCES organisation (id),
    is_voided        boolean NOT NULL DEFAULT false
);

CREATE TABLE program (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255) NOT NULL,
    is_voided        boolean NOT NULL DEFAULT false,
    organisation_id  integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE operational_program (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255),
    program_id       integer NOT NULL REFERENCES program (id),
    organisation_id  integer NOT NULL REFERENCES organisation (id),
    is_voided        boolean NOT NULL DEFAULT false
);

CREATE TABLE encounter_type (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255) NOT NULL,
    is_voided        boolean NOT NULL DEFAULT false,
    organisation_id  integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE operational_encounter_type (
    id                 serial PRIMARY KEY,
    uuid               varchar(255) NOT NULL,
    name               varchar(255),
    encounter_type_id  integer NOT NULL REFERENCES encounter_type (id),
    organisation_id    integer NOT NULL REFERENCES organisation (id),
    is_voided          boolean NOT NULL DEFAULT false
);

CREATE TABLE form (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255) NOT NULL,
    form_type        varchar(255) NOT NULL,
    is_voided        boolean NOT NULL DEFAULT false,
    organisation_id  integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE form_mapping (
    id                           serial PRIMARY KEY,
    uuid                         varchar(255) NOT NULL,
    form_id                      integer NOT NULL REFERENCES form (id),
    subject_type_id              integer REFERENCES subject_type (id),
    entity_id                    integer REFERENCES program (id),
    observations_type_entity_id  integer REFERENCES encounter_type (id),
    is_voided                    boolean NOT NULL DEFAULT false,
    organisation_id              integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE form_element_group (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    name             varchar(255) NOT NULL,
    form_id          integer NOT NULL REFERENCES form (id),
    display_order    double precision NOT NULL,
    is_voided        boolean NOT NULL DEFAULT false,
    organisation_id  integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE form_element (
    id                     serial PRIMARY KEY,
    uuid                   varchar(255) NOT NULL,
    name                   varchar(255) NOT NULL,
    display_order          double precision NOT NULL,
    is_mandatory           boolean NOT NULL DEFAULT false,
    key_values             jsonb,
    concept_id             integer NOT NULL REFERENCES concept (id),
    form_element_group_id  integer NOT NULL REFERENCES form_element_group (id),
    type                   varchar(1024),
    group_id               integer REFERENCES form_element (id),
    is_voided              boolean NOT NULL DEFAULT false,
    organisation_id        integer NOT NULL REFERENCES organisation (id)
);

-- Questions an organisation switched off (usually a child organisation
-- hiding its parent's question); both references nullable, as in
-- avni-server's schema.
CREATE TABLE non_applicable_form_element (
    id               serial PRIMARY KEY,
    uuid             varchar(255) NOT NULL,
    organisation_id  bigint REFERENCES organisation (id),
    form_element_id  bigint REFERENCES form_element (id),
    is_voided        boolean NOT NULL DEFAULT false
);

CREATE TABLE address_level_type (
    id                       serial PRIMARY KEY,
    uuid                     varchar(255) NOT NULL,
    name                     varchar(255) NOT NULL,
    level                    double precision NOT NULL,
    parent_id                integer REFERENCES address_level_type (id),
    is_voided                boolean NOT NULL DEFAULT false,
    organisation_id          integer NOT NULL REFERENCES organisation (id)
);

CREATE TABLE address_level (
    id                       serial PRIMARY KEY,
    uuid                     varchar(255) NOT NULL,
    title                    varchar(255) NOT NULL,
    type_id                  integer NOT NULL REFERENCES address_level_type (id),
    parent_id                integer REFERENCES address_level (id),
    level                    double precision,
    is_voided                boolean NOT NULL DEFAULT false,
    organisation_id          integer NOT NULL REFERENCES organisation (id),
    created_by_id            bigint NOT NULL REFERENCES users (id),
    last_modified_by_id      bigint NOT NULL REFERENCES users (id),
    created_date_time        timestamptz(3) NOT NULL DEFAULT now(),
    last_modified_date_time  timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX address_level_org_lmdt_idx ON address_level (organisation_id, last_modified_date_time);
CREATE INDEX address_level_parent_idx ON address_level (parent_id);

CREATE TABLE individual (
    id                       bigserial PRIMARY KEY,
    uuid                     varchar(255) NOT NULL UNIQUE,
    subject_type_id          integer NOT NULL REFERENCES subject_type (id),
    first_name               varchar(256),
    middle_name              varchar(255),
    last_name                varchar(256),
    date_of_birth            date,
    date_of_birth_verified   boolean NOT NULL DEFAULT false,
    gender_id                integer REFERENCES gender (id),
    registration_date        date NOT NULL,
    address_id               bigint REFERENCES address_level (id),
    registration_location    point,
    observations             jsonb,
    is_voided                boolean NOT NULL DEFAULT false,
    organisation_id          integer NOT NULL REFERENCES organisation (id),
    created_by_id            bigint NOT NULL REFERENCES users (id),
    last_modified_by_id      bigint NOT NULL REFERENCES users (id),
    created_date_time        timestamptz(3) NOT NULL,
    last_modified_date_time  timestamptz(3) NOT NULL
);
CREATE INDEX individual_org_lmdt_idx ON individual (organisation_id, last_modified_date_time);

CREATE TABLE program_enrolment (
    id                          bigserial PRIMARY KEY,
    uuid                        varchar(255) NOT NULL UNIQUE,
    individual_id               bigint NOT NULL REFERENCES individual (id),
    program_id                  integer NOT NULL REFERENCES program (id),
    enrolment_date_time         timestamptz(3) NOT NULL,
    program_exit_date_time      timestamptz(3),
    observations                jsonb,
    program_exit_observations   jsonb,
    is_voided                   boolean NOT NULL DEFAULT false,
    organisation_id             integer NOT NULL REFERENCES organisation (id),
    created_by_id               bigint NOT NULL REFERENCES users (id),
    last_modified_by_id         bigint NOT NULL REFERENCES users (id),
    created_date_time           timestamptz(3) NOT NULL,
    last_modified_date_time     timestamptz(3) NOT NULL
);
CREATE INDEX program_enrolment_org_lmdt_idx ON program_enrolment (organisation_id, last_modified_date_time);
CREATE INDEX program_enrolment_individual_idx ON program_enrolment (individual_id);

CREATE TABLE program_encounter (
    id                        bigserial PRIMARY KEY,
    uuid                      varchar(255) NOT NULL UNIQUE,
    program_enrolment_id      bigint NOT NULL REFERENCES program_enrolment (id),
    encounter_type_id         integer NOT NULL REFERENCES encounter_type (id),
    name                      varchar(255),
    earliest_visit_date_time  timestamptz(3),
    max_visit_date_time       timestamptz(3),
    encounter_date_time       timestamptz(3),
    cancel_date_time          timestamptz(3),
    observations              jsonb,
    cancel_observations       jsonb,
    is_voided                 boolean NOT NULL DEFAULT false,
    organisation_id           integer NOT NULL REFERENCES organisation (id),
    created_by_id             bigint NOT NULL REFERENCES users (id),
    last_modified_by_id       bigint NOT NULL REFERENCES users (id),
    created_date_time         timestamptz(3) NOT NULL,
    last_modified_date_time   timestamptz(3) NOT NULL
);
CREATE INDEX program_encounter_org_lmdt_idx ON program_encounter (organisation_id, last_modified_date_time);
CREATE INDEX program_encounter_enrolment_idx ON program_encounter (program_enrolment_id);

CREATE TABLE encounter (
    id                        bigserial PRIMARY KEY,
    uuid                      varchar(255) NOT NULL UNIQUE,
    individual_id             bigint NOT NULL REFERENCES individual (id),
    encounter_type_id         integer NOT NULL REFERENCES encounter_type (id),
    name                      varchar(255),
    earliest_visit_date_time  timestamptz(3),
    max_visit_date_time       timestamptz(3),
    encounter_date_time       timestamptz(3),
    cancel_date_time          timestamptz(3),
    observations              jsonb,
    cancel_observations       jsonb,
    is_voided                 boolean NOT NULL DEFAULT false,
    organisation_id           integer NOT NULL REFERENCES organisation (id),
    created_by_id             bigint NOT NULL REFERENCES users (id),
    last_modified_by_id       bigint NOT NULL REFERENCES users (id),
    created_date_time         timestamptz(3) NOT NULL,
    last_modified_date_time   timestamptz(3) NOT NULL
);
CREATE INDEX encounter_org_lmdt_idx ON encounter (organisation_id, last_modified_date_time);
CREATE INDEX encounter_individual_idx ON encounter (individual_id);

-- Devices' syncs and group memberships (the generator writes none; tests
-- that need them write their own).
CREATE TABLE sync_telemetry (
    id                        serial PRIMARY KEY,
    uuid                      varchar(255) NOT NULL,
    user_id                   integer NOT NULL REFERENCES users (id),
    organisation_id           bigint NOT NULL REFERENCES organisation (id),
    sync_status               varchar(255) NOT NULL,
    sync_start_time           timestamptz NOT NULL,
    sync_end_time             timestamptz,
    device_name               varchar(255),
    android_version           varchar(255),
    app_version               varchar(255),
    device_info               jsonb,
    sync_source               text,
    created_by_id             bigint,
    last_modified_by_id       bigint,
    is_voided                 boolean NOT NULL DEFAULT false,
    created_date_time         timestamptz(3),
    last_modified_date_time   timestamptz(3)
);
CREATE INDEX sync_telemetry_org_lmdt_idx ON sync_telemetry (organisation_id, last_modified_date_time);

CREATE TABLE group_role (
    id                        serial PRIMARY KEY,
    uuid                      varchar(255) NOT NULL,
    group_subject_type_id     integer NOT NULL REFERENCES subject_type (id),
    role                      text,
    member_subject_type_id    integer NOT NULL REFERENCES subject_type (id),
    organisation_id           integer NOT NULL REFERENCES organisation (id),
    is_voided                 boolean NOT NULL DEFAULT false,
    created_by_id             bigint NOT NULL REFERENCES users (id),
    last_modified_by_id       bigint NOT NULL REFERENCES users (id),
    created_date_time         timestamptz(3) NOT NULL,
    last_modified_date_time   timestamptz(3) NOT NULL
);

CREATE TABLE group_subject (
    id                        serial PRIMARY KEY,
    uuid                      varchar(255) NOT NULL,
    group_subject_id          integer NOT NULL REFERENCES individual (id),
    member_subject_id         integer NOT NULL REFERENCES individual (id),
    group_role_id             integer NOT NULL REFERENCES group_role (id),
    membership_start_date     timestamptz,
    membership_end_date       timestamptz,
    organisation_id           integer NOT NULL REFERENCES organisation (id),
    is_voided                 boolean NOT NULL DEFAULT false,
    created_by_id             bigint NOT NULL REFERENCES users (id),
    last_modified_by_id       bigint NOT NULL REFERENCES users (id),
    created_date_time         timestamptz(3) NOT NULL,
    last_modified_date_time   timestamptz(3) NOT NULL
);
CREATE INDEX group_subject_org_lmdt_idx ON group_subject (organisation_id, last_modified_date_time);
