-- Avni's row-level security on its metadata tables (avni-server V1_214,
-- V1_218: a role sees the table_metadata / column_metadata rows of its
-- organisation's or group's schema, and the entity_sync_status rows of its
-- db_user), where migrate created the tables (the previous migration, on a
-- database that had none). A table that already has RLS on or a policy is
-- Avni's and is left as it is.
--
-- The table_metadata and column_metadata policies read public.organisation
-- and public.organisation_group (db_user, schema_name); where those are
-- missing (an empty database) the two tables get no policy and a later
-- migrate does not add one. entity_sync_status's policy needs nothing.
--
-- Table owners (the service's role, where it created them) are not
-- subject to the policies (none is FORCEd), as openchs is not on Avni.
DO $$
DECLARE
    orgs boolean := (SELECT count(*) = 4 FROM information_schema.columns
                      WHERE table_schema = 'public'
                        AND table_name IN ('organisation', 'organisation_group')
                        AND column_name IN ('db_user', 'schema_name'));
    visible text := 'schema_name IN (SELECT s.schema_name FROM (SELECT db_user, schema_name FROM public.organisation '
                    'UNION ALL SELECT db_user, schema_name FROM public.organisation_group) s '
                    'WHERE s.db_user = CURRENT_USER)';
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['table_metadata', 'column_metadata', 'entity_sync_status'] LOOP
        IF (SELECT relrowsecurity FROM pg_class WHERE oid = format('public.%I', t)::regclass)
           OR EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public' AND tablename = t) THEN
            CONTINUE;
        END IF;
        IF t = 'entity_sync_status' THEN
            EXECUTE 'CREATE POLICY entity_sync_status_rls_policy ON public.entity_sync_status '
                    'USING (db_user = CURRENT_USER) WITH CHECK (db_user = CURRENT_USER)';
        ELSIF orgs THEN
            EXECUTE format('CREATE POLICY %I ON public.%I USING (%s) WITH CHECK (%s)',
                           t || '_rls_policy', t, visible, visible);
        ELSE
            CONTINUE;
        END IF;
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;
