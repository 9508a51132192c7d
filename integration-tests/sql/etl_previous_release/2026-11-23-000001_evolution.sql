-- Schema evolution (design/etl.md §5.2) identifies a column by what it is
-- made from, not by its name, and notices a rename by comparing the name a
-- column's source gives it now with the one it was given:
--   source_key: 'concept:<concept uuid>:<parent concept uuid>' for a
--               question, 'fixed:<name>' for a column every table of its kind
--               has, 'name:<name>' for an address level's column;
--   base_name:  the name before any suffix that kept it unique.
ALTER TABLE column_metadata ADD COLUMN source_key text;
ALTER TABLE column_metadata ADD COLUMN base_name text;

UPDATE column_metadata c
   SET source_key = CASE
           WHEN c.concept_uuid IS NOT NULL
               THEN 'concept:' || c.concept_uuid || ':' || coalesce(c.parent_concept_uuid, '')
           WHEN t.type = 'Address' AND c.name NOT IN ('id', 'uuid', 'title', 'type', 'parent_id',
                   'is_voided', 'organisation_id', 'created_by', 'last_modified_by',
                   'created_date_time', 'last_modified_date_time')
               THEN 'name:' || c.name
           ELSE 'fixed:' || c.name
       END,
       base_name = c.name
  FROM table_metadata t
 WHERE t.id = c.table_id;

-- An answer PostgreSQL cannot read as its column's type (2024-13-45 for a
-- date, 1e999999 for a number) must become NULL in its cell instead of
-- failing the table's sync. Tables are synced with plain casts first; only a
-- statement that fails is redone with tolerant ones, which send the values
-- no strict pattern vouches for here: catching the error costs a
-- subtransaction, too much for every value, nothing for the rare odd one.
CREATE FUNCTION etl_try_timestamptz(value text) RETURNS timestamptz
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION etl_try_time(value text) RETURNS time
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN value::time;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION etl_try_numeric(value text) RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN value::numeric;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
