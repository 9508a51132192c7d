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

-- An answer that looks like a date or time but is not one (2024-13-45,
-- 25:99) must become NULL in its cell instead of failing the table's sync.
-- The generated SQL casts values that match a strict pattern directly and
-- sends only the rest here: catching the error costs a subtransaction, too
-- much for every value, nothing for the rare odd one.
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
