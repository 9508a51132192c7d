-- avni-server's row-level security on the fixture's tables, written from
-- docs/real-systems/avni-server-schema.md §2 (the policy text at
-- avni-server v17.1.0, migration V1_406). A session's organisation is its
-- CURRENT_USER, the role set with SET ROLE <organisation.db_user>; the
-- owner openchs is not subject to any policy (none is FORCEd).

-- The current organisation and its ancestors, climbing
-- parent_organisation_id (not its descendants). Runs with its owner's
-- (openchs) table access, so organisation's own policy does not apply
-- inside; CURRENT_USER is still the caller.
CREATE VIEW org_ids WITH (security_barrier) AS
    WITH RECURSIVE list_of_orgs(id, parent_organisation_id) AS (
        SELECT id, parent_organisation_id FROM organisation WHERE db_user = CURRENT_USER
        UNION ALL
        SELECT o.id, o.parent_organisation_id FROM organisation o, list_of_orgs log
         WHERE o.id = log.parent_organisation_id)
    SELECT id FROM list_of_orgs;

-- Transactional rows: the organisation's own and, for a group's role, its
-- members' (organisation_group_organisation is itself filtered by RLS).
CREATE FUNCTION rls_visible_org_ids() RETURNS integer[]
LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(array_agg(org_id), '{}'::integer[])
      FROM (SELECT id AS org_id FROM public.organisation WHERE db_user = current_user
            UNION
            SELECT organisation_id FROM public.organisation_group_organisation) visible_orgs;
$fn$;

-- Reference rows: as above, plus the organisation's ancestors.
CREATE FUNCTION rls_visible_org_ids_with_ancestors() RETURNS integer[]
LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(array_agg(org_id), '{}'::integer[])
      FROM (SELECT id AS org_id FROM public.org_ids
            UNION
            SELECT organisation_id FROM public.organisation_group_organisation) visible_orgs;
$fn$;

-- The <table>_orgs policy of an organisation table: read through
-- `visible` (one of the two functions above, evaluated once per statement),
-- write only the current organisation's rows.
CREATE FUNCTION enable_rls_on_org_table(tablename text, visibleorgidsfn text) RETURNS text
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', tablename || '_orgs', tablename);
    EXECUTE format(
        'CREATE POLICY %I ON public.%I USING (organisation_id = ANY (COALESCE((SELECT %s()), ''{}''::integer[]))) '
        'WITH CHECK (organisation_id = (SELECT id FROM public.organisation WHERE db_user = current_user))',
        tablename || '_orgs', tablename, visibleorgidsfn);
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', tablename);
    RETURN 'Enabled RLS on ' || tablename;
END
$fn$;

CREATE FUNCTION enable_rls_on_tx_table(tablename text) RETURNS text
LANGUAGE plpgsql AS $fn$ BEGIN RETURN enable_rls_on_org_table(tablename, 'public.rls_visible_org_ids'); END $fn$;

CREATE FUNCTION enable_rls_on_ref_table(tablename text) RETURNS text
LANGUAGE plpgsql AS $fn$ BEGIN RETURN enable_rls_on_org_table(tablename, 'public.rls_visible_org_ids_with_ancestors'); END $fn$;

SELECT enable_rls_on_ref_table(t) FROM unnest(ARRAY['gender', 'concept', 'concept_answer', 'subject_type',
    'operational_subject_type', 'program', 'operational_program', 'encounter_type', 'operational_encounter_type',
    'form', 'form_mapping', 'form_element_group', 'form_element', 'non_applicable_form_element', 'address_level',
    'address_level_type', 'location_location_mapping', 'group_role']) AS t;

SELECT enable_rls_on_tx_table(t) FROM unnest(ARRAY['individual', 'program_enrolment', 'program_encounter',
    'encounter', 'group_subject', 'entity_approval_status', 'sync_telemetry']) AS t;

-- organisation: openchs and openchs_impl see all; a role its chain and,
-- for a group, the members. No WITH CHECK, so USING governs writes too.
CREATE POLICY organisation_policy ON organisation USING (
    CURRENT_USER = ANY (ARRAY['openchs'::name, 'openchs_impl'::name])
    OR id IN (SELECT id FROM org_ids)
    OR id IN (SELECT organisation_id FROM organisation_group_organisation));
ALTER TABLE organisation ENABLE ROW LEVEL SECURITY;

CREATE POLICY organisation_group_policy ON organisation_group USING (CURRENT_USER = db_user::text);
ALTER TABLE organisation_group ENABLE ROW LEVEL SECURITY;

CREATE POLICY organisation_group_organisation_policy ON organisation_group_organisation USING (
    organisation_group_id IN (SELECT id FROM organisation_group WHERE db_user = CURRENT_USER));
ALTER TABLE organisation_group_organisation ENABLE ROW LEVEL SECURITY;

-- users: two permissive policies, OR-ed. users_policy: the organisation,
-- its descendants and its ancestors (writes: itself and descendants), and
-- for openchs_impl every root organisation.
CREATE POLICY users_policy ON users
USING (organisation_id IN (
    WITH RECURSIVE children(id, parent_organisation_id) AS (
        SELECT id, parent_organisation_id FROM organisation WHERE db_user = CURRENT_USER
        UNION ALL
        SELECT grand_children.id, grand_children.parent_organisation_id FROM organisation grand_children, children
         WHERE grand_children.parent_organisation_id = children.id)
    (SELECT id FROM children
     UNION
     (WITH RECURSIVE parents(id, parent_organisation_id) AS (
          SELECT id, parent_organisation_id FROM organisation WHERE db_user = CURRENT_USER
          UNION ALL
          SELECT grand_parents.id, grand_parents.parent_organisation_id FROM organisation grand_parents, parents
           WHERE grand_parents.id = parents.parent_organisation_id)
      SELECT id FROM parents))
    UNION ALL
    SELECT id FROM organisation WHERE parent_organisation_id IS NULL AND CURRENT_USER = 'openchs_impl'))
WITH CHECK (organisation_id IN (
    WITH RECURSIVE children(id, parent_organisation_id) AS (
        SELECT id, parent_organisation_id FROM organisation WHERE db_user = CURRENT_USER
        UNION ALL
        SELECT grand_children.id, grand_children.parent_organisation_id FROM organisation grand_children, children
         WHERE grand_children.parent_organisation_id = children.id)
    SELECT id FROM children
    UNION ALL
    SELECT id FROM organisation WHERE parent_organisation_id IS NULL AND CURRENT_USER = 'openchs_impl'));

CREATE POLICY users_user ON users
USING (organisation_id IN (SELECT id FROM organisation WHERE db_user = ANY (ARRAY['openchs'::name, CURRENT_USER]))
       OR id IN (SELECT admin_id FROM account_admin WHERE account_id IN
                   (SELECT account_id FROM organisation WHERE db_user = ANY (ARRAY['openchs'::name, CURRENT_USER])))
       OR organisation_id IN (SELECT organisation_id FROM organisation_group_organisation))
WITH CHECK (organisation_id IN (SELECT id FROM organisation WHERE db_user = ANY (ARRAY['openchs'::name, CURRENT_USER])));
ALTER TABLE users ENABLE ROW LEVEL SECURITY;

-- The ETL metadata: table_metadata and column_metadata by the schema of
-- the role's organisation or group, entity_sync_status and
-- post_etl_sync_status by db_user. index_metadata has no RLS.
CREATE POLICY table_metadata_rls_policy ON table_metadata
USING (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM organisation
                                                  UNION ALL SELECT db_user, schema_name FROM organisation_group) s
                        WHERE s.db_user = CURRENT_USER))
WITH CHECK (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM organisation
                                                       UNION ALL SELECT db_user, schema_name FROM organisation_group) s
                             WHERE s.db_user = CURRENT_USER));
ALTER TABLE table_metadata ENABLE ROW LEVEL SECURITY;

CREATE POLICY column_metadata_rls_policy ON column_metadata
USING (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM organisation
                                                  UNION ALL SELECT db_user, schema_name FROM organisation_group) s
                        WHERE s.db_user = CURRENT_USER))
WITH CHECK (schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM organisation
                                                       UNION ALL SELECT db_user, schema_name FROM organisation_group) s
                             WHERE s.db_user = CURRENT_USER));
ALTER TABLE column_metadata ENABLE ROW LEVEL SECURITY;

CREATE POLICY entity_sync_status_rls_policy ON entity_sync_status
    USING (db_user = CURRENT_USER) WITH CHECK (db_user = CURRENT_USER);
ALTER TABLE entity_sync_status ENABLE ROW LEVEL SECURITY;

CREATE POLICY post_etl_sync_status_rls_policy ON post_etl_sync_status
    USING (db_user = CURRENT_USER) WITH CHECK (db_user = CURRENT_USER);
ALTER TABLE post_etl_sync_status ENABLE ROW LEVEL SECURITY;
