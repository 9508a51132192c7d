-- One organisation's rows, written as avni-server writes them: run under
-- SET ROLE <organisation.db_user> (row-level security on, so every row is
-- checked to be the organisation's own), with all four audit columns set
-- (the audit trigger fills audit_id and writes public.audit), and with the
-- session settings fixture.key (a short name for this organisation's names
-- and uuids) and fixture.subjects (how many subjects).
--
-- An organisation that already sees a "Person" subject type (a child
-- organisation: its parent's, through RLS) defines no metadata of its own:
-- it uses its parent's forms and switches one of the parent's questions
-- off in non_applicable_form_element, as avni-server lets a child do.
DO $fixture$
DECLARE
    k text := current_setting('fixture.key');
    n int := current_setting('fixture.subjects')::int;
    org int := (SELECT id FROM public.organisation WHERE db_user = current_user);
    ts timestamptz := date_trunc('milliseconds', now()) - interval '1 minute';
    admin int;
    inherited boolean := EXISTS (SELECT 1 FROM public.subject_type WHERE name = 'Person' AND organisation_id <> org);
    st int; prog int; anc int; hv int; district int; village int; male int;
    weight int; notes int; blood int; visit int; a_pos int; b_pos int;
    form_id int; feg int; subj int; enr int;
    f record;
BEGIN
    IF org IS NULL THEN
        RAISE 'org_data.sql must run as an organisation''s role, not %', current_user;
    END IF;

    INSERT INTO public.users (uuid, username, organisation_id, operating_individual_scope, name, is_org_admin,
                              created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':user:admin')::uuid, 'admin@' || k, org, 'None', 'Admin of ' || k, true, 1, 1, ts, ts)
    RETURNING id INTO admin;
    INSERT INTO public.users (uuid, username, organisation_id, operating_individual_scope, name,
                              created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':user:worker')::uuid, 'worker@' || k, org, 'None', 'Worker of ' || k, admin, admin, ts, ts);

    -- Every organisation gets genders of its own (avni-server's
    -- setupBaseOrganisationData) and its own locations.
    INSERT INTO public.gender (uuid, name, version, organisation_id, created_by_id, last_modified_by_id,
                               created_date_time, last_modified_date_time)
    VALUES (md5(k || ':gender:Male')::uuid, 'Male', 0, org, admin, admin, ts, ts),
           (md5(k || ':gender:Female')::uuid, 'Female', 0, org, admin, admin, ts, ts);
    SELECT id INTO male FROM public.gender WHERE organisation_id = org AND name = 'Male';

    INSERT INTO public.address_level_type (uuid, name, organisation_id, version, level, created_by_id,
                                           last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':alt:District')::uuid, 'District ' || k, org, 0, 2, admin, admin, ts, ts)
    RETURNING id INTO district;
    INSERT INTO public.address_level_type (uuid, name, organisation_id, version, level, parent_id, created_by_id,
                                           last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':alt:Village')::uuid, 'Village ' || k, org, 0, 1, district, admin, admin, ts, ts)
    RETURNING id INTO village;
    DECLARE
        d int := nextval('public.address_level_id_seq');
        v int := nextval('public.address_level_id_seq');
    BEGIN
        INSERT INTO public.address_level (id, title, uuid, version, organisation_id, type_id, lineage, parent_id,
                                          created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES (d, 'District of ' || k, md5(k || ':al:district')::uuid, 0, org, district, d::text::ltree, NULL,
                admin, admin, ts, ts),
               (v, 'Village of ' || k, md5(k || ':al:village')::uuid, 0, org, village, (d || '.' || v)::ltree, d,
                admin, admin, ts, ts);
        village := v;
    END;

    IF NOT inherited THEN
        -- Concepts: three questions and a coded one with two answers.
        INSERT INTO public.concept (data_type, name, uuid, version, organisation_id, created_by_id,
                                    last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES ('Numeric', 'Weight', md5(k || ':concept:Weight')::uuid, 0, org, admin, admin, ts, ts),
               ('Text', 'Notes', md5(k || ':concept:Notes')::uuid, 0, org, admin, admin, ts, ts),
               ('Coded', 'Blood group', md5(k || ':concept:Blood group')::uuid, 0, org, admin, admin, ts, ts),
               ('Date', 'Visit date', md5(k || ':concept:Visit date')::uuid, 0, org, admin, admin, ts, ts),
               ('NA', 'A+', md5(k || ':concept:A+')::uuid, 0, org, admin, admin, ts, ts),
               ('NA', 'B+', md5(k || ':concept:B+')::uuid, 0, org, admin, admin, ts, ts);
        INSERT INTO public.concept_answer (concept_id, answer_concept_id, uuid, version, answer_order, organisation_id,
                                           created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
        SELECT q.id, a.id, md5(k || ':answer:' || a.name)::uuid, 0, a.ord, org, admin, admin, ts, ts
          FROM public.concept q,
               (SELECT c.id, c.name, row_number() OVER (ORDER BY c.name) AS ord
                  FROM public.concept c WHERE c.organisation_id = org AND c.data_type = 'NA') a
         WHERE q.organisation_id = org AND q.name = 'Blood group';

        INSERT INTO public.subject_type (uuid, name, organisation_id, version, type, created_by_id,
                                         last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES (md5(k || ':st:Person')::uuid, 'Person', org, 0, 'Person', admin, admin, ts, ts)
        RETURNING id INTO st;
        INSERT INTO public.operational_subject_type (uuid, name, subject_type_id, organisation_id, created_by_id,
                                                     last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES (md5(k || ':ost:Person')::uuid, 'Person', st, org, admin, admin, ts, ts);

        INSERT INTO public.program (uuid, name, version, organisation_id, created_by_id, last_modified_by_id,
                                    created_date_time, last_modified_date_time)
        VALUES (md5(k || ':program:Maternal')::uuid, 'Maternal', 0, org, admin, admin, ts, ts)
        RETURNING id INTO prog;
        INSERT INTO public.operational_program (uuid, organisation_id, program_id, version, name, created_by_id,
                                                last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES (md5(k || ':op:Maternal')::uuid, org, prog, 0, 'Maternal', admin, admin, ts, ts);

        INSERT INTO public.encounter_type (name, uuid, version, organisation_id, created_by_id, last_modified_by_id,
                                           created_date_time, last_modified_date_time)
        VALUES ('ANC', md5(k || ':et:ANC')::uuid, 0, org, admin, admin, ts, ts) RETURNING id INTO anc;
        INSERT INTO public.encounter_type (name, uuid, version, organisation_id, created_by_id, last_modified_by_id,
                                           created_date_time, last_modified_date_time)
        VALUES ('Home visit', md5(k || ':et:Home visit')::uuid, 0, org, admin, admin, ts, ts) RETURNING id INTO hv;
        INSERT INTO public.operational_encounter_type (uuid, organisation_id, encounter_type_id, version, name,
                                                       created_by_id, last_modified_by_id, created_date_time,
                                                       last_modified_date_time)
        VALUES (md5(k || ':oet:ANC')::uuid, org, anc, 0, 'ANC', admin, admin, ts, ts),
               (md5(k || ':oet:Home visit')::uuid, org, hv, 0, 'Home visit', admin, admin, ts, ts);

        -- Forms, one group each, their questions, and their mappings.
        FOR f IN SELECT * FROM (VALUES
                ('Person registration', 'IndividualProfile', NULL::int, NULL::int, ARRAY['Weight', 'Notes', 'Blood group']),
                ('Maternal enrolment', 'ProgramEnrolment', prog, NULL, ARRAY['Weight']),
                ('Maternal exit', 'ProgramExit', prog, NULL, ARRAY['Notes']),
                ('ANC', 'ProgramEncounter', prog, anc, ARRAY['Weight', 'Blood group']),
                ('ANC cancel', 'ProgramEncounterCancellation', prog, anc, ARRAY['Notes']),
                ('Home visit', 'Encounter', NULL, hv, ARRAY['Notes', 'Visit date']),
                ('Home visit cancel', 'IndividualEncounterCancellation', NULL, hv, ARRAY['Notes'])
            ) AS t(name, form_type, entity, obs_type, questions)
        LOOP
            INSERT INTO public.form (name, form_type, uuid, version, organisation_id, created_by_id,
                                     last_modified_by_id, created_date_time, last_modified_date_time)
            VALUES (f.name, f.form_type, md5(k || ':form:' || f.name)::uuid, 0, org, admin, admin, ts, ts)
            RETURNING id INTO form_id;
            INSERT INTO public.form_element_group (name, form_id, uuid, version, display_order, organisation_id,
                                                   created_by_id, last_modified_by_id, created_date_time,
                                                   last_modified_date_time)
            VALUES (f.name || ' details', form_id, md5(k || ':feg:' || f.name)::uuid, 0, 1, org, admin, admin, ts, ts)
            RETURNING id INTO feg;
            INSERT INTO public.form_element (name, display_order, concept_id, form_element_group_id, uuid, version,
                                             organisation_id, type, created_by_id, last_modified_by_id,
                                             created_date_time, last_modified_date_time)
            SELECT q.question, q.ord, c.id, feg, md5(k || ':fe:' || f.name || ':' || q.question)::uuid, 0, org,
                   CASE WHEN c.data_type = 'Coded' THEN 'SingleSelect' END, admin, admin, ts, ts
              FROM unnest(f.questions) WITH ORDINALITY AS q(question, ord)
              JOIN public.concept c ON c.name = q.question AND c.organisation_id = org;
            INSERT INTO public.form_mapping (form_id, uuid, version, entity_id, observations_type_entity_id,
                                             organisation_id, subject_type_id, created_by_id, last_modified_by_id,
                                             created_date_time, last_modified_date_time)
            VALUES (form_id, md5(k || ':fm:' || f.name)::uuid, 0, f.entity, f.obs_type, org, st, admin, admin, ts, ts);
        END LOOP;
    ELSE
        -- A child: its parent's "Notes" question on the registration form
        -- does not apply here.
        INSERT INTO public.non_applicable_form_element (organisation_id, form_element_id, uuid, created_by_id,
                                                        last_modified_by_id, created_date_time, last_modified_date_time)
        SELECT org, fe.id, md5(k || ':nafe:Notes')::uuid, admin, admin, ts, ts
          FROM public.form_element fe
          JOIN public.form_element_group g ON g.id = fe.form_element_group_id
          JOIN public.form fm ON fm.id = g.form_id
         WHERE fm.name = 'Person registration' AND fe.name = 'Notes';
    END IF;

    -- Transactional rows, against the metadata this role sees (its own or
    -- its parent's).
    SELECT id INTO st FROM public.subject_type WHERE name = 'Person';
    SELECT id INTO prog FROM public.program WHERE name = 'Maternal';
    SELECT id INTO anc FROM public.encounter_type WHERE name = 'ANC';
    SELECT id INTO hv FROM public.encounter_type WHERE name = 'Home visit';
    SELECT id INTO weight FROM public.concept WHERE name = 'Weight';
    SELECT id INTO notes FROM public.concept WHERE name = 'Notes';
    SELECT id INTO blood FROM public.concept WHERE name = 'Blood group';
    SELECT id INTO visit FROM public.concept WHERE name = 'Visit date';
    SELECT id INTO a_pos FROM public.concept WHERE name = 'A+';
    SELECT id INTO b_pos FROM public.concept WHERE name = 'B+';
    FOR i IN 1..n LOOP
        INSERT INTO public.individual (uuid, address_id, observations, version, date_of_birth, date_of_birth_verified,
                                       gender_id, registration_date, organisation_id, first_name, last_name,
                                       subject_type_id, created_by_id, last_modified_by_id, created_date_time,
                                       last_modified_date_time)
        VALUES (md5(k || ':subject:' || i)::uuid, village,
                jsonb_build_object((SELECT uuid FROM public.concept WHERE id = weight), 50 + i,
                                   (SELECT uuid FROM public.concept WHERE id = notes), 'note ' || i,
                                   (SELECT uuid FROM public.concept WHERE id = blood),
                                   (SELECT uuid FROM public.concept WHERE id = CASE WHEN i % 2 = 0 THEN a_pos ELSE b_pos END)),
                0, date '1990-01-01' + i, false, male, date '2025-01-01' + i, org, 'First' || i, k,
                st, admin, admin, ts, ts)
        RETURNING id INTO subj;
        INSERT INTO public.program_enrolment (program_id, individual_id, observations, enrolment_date_time, uuid,
                                              version, organisation_id, address_id, created_by_id,
                                              last_modified_by_id, created_date_time, last_modified_date_time)
        VALUES (prog, subj, jsonb_build_object((SELECT uuid FROM public.concept WHERE id = weight), 51 + i),
                timestamptz '2025-02-01 10:00+00' + i * interval '1 day', md5(k || ':enrolment:' || i)::uuid,
                0, org, village, admin, admin, ts, ts)
        RETURNING id INTO enr;
        INSERT INTO public.program_encounter (observations, encounter_date_time, program_enrolment_id, uuid, version,
                                              encounter_type_id, name, organisation_id, address_id, individual_id,
                                              created_by_id, last_modified_by_id, created_date_time,
                                              last_modified_date_time)
        VALUES (jsonb_build_object((SELECT uuid FROM public.concept WHERE id = weight), 52 + i),
                timestamptz '2025-03-01 10:00+00' + i * interval '1 day', enr, md5(k || ':anc:' || i)::uuid, 0,
                anc, 'ANC', org, village, subj, admin, admin, ts, ts);
        INSERT INTO public.encounter (observations, encounter_date_time, encounter_type_id, individual_id, uuid,
                                      version, organisation_id, name, address_id, created_by_id, last_modified_by_id,
                                      created_date_time, last_modified_date_time)
        VALUES (jsonb_build_object((SELECT uuid FROM public.concept WHERE id = visit), '2025-04-0' || (i % 9 + 1)),
                timestamptz '2025-04-01 10:00+00' + i * interval '1 day', hv, subj, md5(k || ':visit:' || i)::uuid,
                0, org, 'Home visit', village, admin, admin, ts, ts);
        INSERT INTO public.entity_approval_status (uuid, entity_id, entity_type, approval_status_id, organisation_id,
                                                   status_date_time, entity_type_uuid, individual_id, address_id,
                                                   created_by_id, last_modified_by_id, created_date_time,
                                                   last_modified_date_time)
        VALUES (md5(k || ':approval:' || i)::uuid, subj, 'Subject', 2, org, ts, (SELECT uuid FROM public.subject_type WHERE id = st),
                subj, village, admin, admin, ts, ts);
    END LOOP;
END
$fixture$;
