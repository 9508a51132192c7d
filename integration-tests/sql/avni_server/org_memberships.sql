-- An organisation's households, self-help groups, their memberships and
-- its devices' syncs, written as avni-server writes them: run under
-- SET ROLE <organisation.db_user> after org_data.sql (its "Person"
-- subjects and users), with the session setting fixture.key.
--
-- Household 1 has a head (subject 1) and a member (subject 2); household
-- 2 has only a member (subject 3) and no head; the self-help group has
-- subjects 1 and 3. The worker synced three times.
DO $fixture$
DECLARE
    k text := current_setting('fixture.key');
    org int := (SELECT id FROM public.organisation WHERE db_user = current_user);
    ts timestamptz := date_trunc('milliseconds', now()) - interval '1 minute';
    admin int := (SELECT id FROM public.users WHERE organisation_id = org AND is_org_admin);
    worker int := (SELECT id FROM public.users WHERE organisation_id = org AND NOT is_org_admin);
    person int := (SELECT id FROM public.subject_type WHERE name = 'Person');
    village int := (SELECT address_id FROM public.individual WHERE uuid = md5(k || ':subject:1')::uuid::text);
    hh int; shg int; head int; hh_member int; shg_member int; form_id int;
    h1 int; h2 int; g1 int;
    p1 int := (SELECT id FROM public.individual WHERE uuid = md5(k || ':subject:1')::uuid::text);
    p2 int := (SELECT id FROM public.individual WHERE uuid = md5(k || ':subject:2')::uuid::text);
    p3 int := (SELECT id FROM public.individual WHERE uuid = md5(k || ':subject:3')::uuid::text);
BEGIN
    IF org IS NULL OR p3 IS NULL THEN
        RAISE 'org_memberships.sql must run as an organisation''s role after org_data.sql with 3 subjects';
    END IF;

    -- The subject types, each with a registration form.
    INSERT INTO public.subject_type (uuid, name, organisation_id, type, is_household, created_by_id,
                                     last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':st:Household')::uuid, 'Household', org, 'Household', true, admin, admin, ts, ts)
    RETURNING id INTO hh;
    INSERT INTO public.subject_type (uuid, name, organisation_id, type, is_group, created_by_id,
                                     last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':st:SHG')::uuid, 'Self Help Group', org, 'Group', true, admin, admin, ts, ts)
    RETURNING id INTO shg;
    INSERT INTO public.operational_subject_type (uuid, name, subject_type_id, organisation_id, created_by_id,
                                                 last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':ost:Household')::uuid, 'Household', hh, org, admin, admin, ts, ts),
           (md5(k || ':ost:SHG')::uuid, 'Self Help Group', shg, org, admin, admin, ts, ts);
    FOR form_id IN SELECT unnest(ARRAY[hh, shg]) LOOP
        DECLARE
            st int := form_id;
            f int;
        BEGIN
            INSERT INTO public.form (name, form_type, uuid, version, organisation_id, created_by_id,
                                     last_modified_by_id, created_date_time, last_modified_date_time)
            VALUES ('Registration ' || st, 'IndividualProfile', md5(k || ':form:reg:' || st)::uuid, 0, org,
                    admin, admin, ts, ts)
            RETURNING id INTO f;
            INSERT INTO public.form_mapping (form_id, uuid, version, organisation_id, subject_type_id,
                                             created_by_id, last_modified_by_id, created_date_time,
                                             last_modified_date_time)
            VALUES (f, md5(k || ':fm:reg:' || st)::uuid, 0, org, st, admin, admin, ts, ts);
        END;
    END LOOP;

    -- The roles: a household's head and members, a group's members.
    INSERT INTO public.group_role (uuid, group_subject_type_id, role, member_subject_type_id, is_primary,
                                   maximum_number_of_members, minimum_number_of_members, organisation_id,
                                   created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':role:head')::uuid, hh, 'Head of household', person, true, 1, 1, org, admin, admin, ts, ts)
    RETURNING id INTO head;
    INSERT INTO public.group_role (uuid, group_subject_type_id, role, member_subject_type_id, is_primary,
                                   maximum_number_of_members, minimum_number_of_members, organisation_id,
                                   created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':role:hh member')::uuid, hh, 'Member', person, false, 20, 0, org, admin, admin, ts, ts)
    RETURNING id INTO hh_member;
    INSERT INTO public.group_role (uuid, group_subject_type_id, role, member_subject_type_id, is_primary,
                                   maximum_number_of_members, minimum_number_of_members, organisation_id,
                                   created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':role:shg member')::uuid, shg, 'Member', person, false, 20, 0, org, admin, admin, ts, ts)
    RETURNING id INTO shg_member;

    -- The households and the group.
    INSERT INTO public.individual (uuid, address_id, version, date_of_birth_verified, registration_date,
                                   organisation_id, first_name, subject_type_id, created_by_id,
                                   last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':household:1')::uuid, village, 0, false, date '2025-01-10', org, 'Household 1 of ' || k,
            hh, admin, admin, ts, ts)
    RETURNING id INTO h1;
    INSERT INTO public.individual (uuid, address_id, version, date_of_birth_verified, registration_date,
                                   organisation_id, first_name, subject_type_id, created_by_id,
                                   last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':household:2')::uuid, village, 0, false, date '2025-01-11', org, 'Household 2 of ' || k,
            hh, admin, admin, ts, ts)
    RETURNING id INTO h2;
    INSERT INTO public.individual (uuid, address_id, version, date_of_birth_verified, registration_date,
                                   organisation_id, first_name, subject_type_id, created_by_id,
                                   last_modified_by_id, created_date_time, last_modified_date_time)
    VALUES (md5(k || ':shg:1')::uuid, village, 0, false, date '2025-01-12', org, 'SHG 1 of ' || k,
            shg, admin, admin, ts, ts)
    RETURNING id INTO g1;

    INSERT INTO public.group_subject (uuid, group_subject_id, member_subject_id, group_role_id,
                                      membership_start_date, organisation_id, version, created_by_id,
                                      last_modified_by_id, created_date_time, last_modified_date_time,
                                      member_subject_address_id, group_subject_address_id)
    SELECT md5(k || ':membership:' || m.name)::uuid, m.grp, m.member, m.role, m.since, org, 0, worker, worker,
           ts, ts, village, village
      FROM (VALUES ('h1 head', h1, p1, head, timestamptz '2025-01-10 09:00+00'),
                   ('h1 member', h1, p2, hh_member, timestamptz '2025-01-10 09:05+00'),
                   ('h2 member', h2, p3, hh_member, timestamptz '2025-01-11 09:00+00'),
                   ('g1 p1', g1, p1, shg_member, timestamptz '2025-01-12 09:00+00'),
                   ('g1 p3', g1, p3, shg_member, timestamptz '2025-01-12 09:10+00'))
           AS m(name, grp, member, role, since);

    -- The worker's syncs: two complete (one manual), one incomplete.
    INSERT INTO public.sync_telemetry (uuid, user_id, organisation_id, version, sync_status, sync_start_time,
                                       sync_end_time, device_name, android_version, app_version, device_info,
                                       sync_source, created_by_id, last_modified_by_id, created_date_time,
                                       last_modified_date_time)
    SELECT md5(k || ':sync:' || s.n)::uuid, worker, org, 0, s.status,
           timestamptz '2025-05-01 08:00+00' + s.n * interval '1 day',
           timestamptz '2025-05-01 08:02+00' + s.n * interval '1 day',
           'Pixel ' || s.n, '14', '10.' || s.n, jsonb_build_object('model', 'Pixel ' || s.n), s.source,
           worker, worker, ts, ts
      FROM (VALUES (1, 'complete', 'manual'), (2, 'incomplete', 'automatic'), (3, 'complete', 'automatic'))
           AS s(n, status, source);
END
$fixture$;
