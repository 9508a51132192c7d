-- The rows avni-server's migrations insert (docs/real-systems/
-- avni-server-schema.md §5), the part the ETL can meet: account 1,
-- organisation 1 "OpenCHS" (role openchs_impl), user 1 "admin" with no
-- organisation, org 1's "Individual" subject type with type NULL (and
-- allow_middle_name false, no operational row), org 1's genders and the
-- three global approval statuses. Loaded as openchs after rls.sql.
-- Organisations are then created as avni-server's POST /organisation does
-- (integration-tests/src/avni_server.rs) and filled by org_data.sql.

INSERT INTO account (id, name, region) VALUES (1, 'default', 'IN');
SELECT setval('account_id_seq', 1);

INSERT INTO organisation (id, name, db_user, uuid, parent_organisation_id, media_directory, account_id,
                          schema_name, category_id, status_id)
VALUES (1, 'OpenCHS', 'openchs_impl', '3539a906-dfae-4ec3-8fbb-1b08f35c3884', NULL, 'openchs', 1,
        'openchs_impl', 1, 1);
SELECT setval('organisation_id_seq', 1);

INSERT INTO users (id, uuid, username, organisation_id, operating_individual_scope, name, is_org_admin)
VALUES (1, '5fed2907-df3a-4867-aef5-c87f4c78a31a', 'admin', NULL, 'None', 'admin', false);
SELECT setval('users_id_seq', 1);
INSERT INTO account_admin (name, account_id, admin_id) VALUES ('Samanvay', 1, 1);

INSERT INTO subject_type (id, uuid, name, organisation_id, is_voided, version, active, type, allow_middle_name,
                          created_by_id, last_modified_by_id, created_date_time, last_modified_date_time)
VALUES (1, '9f2af1f9-e150-4f8e-aad3-40bb7eb05aa3', 'Individual', 1, false, 1, true, NULL, false,
        1, 1, '2018-01-01 00:00+00', '2018-01-01 00:00+00');
SELECT setval('subject_type_id_seq', 1);

INSERT INTO gender (uuid, name, version, organisation_id, created_by_id, last_modified_by_id,
                    created_date_time, last_modified_date_time)
VALUES ('ad7d1d14-54fd-45a2-86b7-ea329b744484', 'Female', 0, 1, 1, 1, '2018-01-01 00:00+00', '2018-01-01 00:00+00'),
       ('840de9fb-e565-4d7d-b751-90335ba20490', 'Male', 0, 1, 1, 1, '2018-01-01 00:00+00', '2018-01-01 00:00+00'),
       ('188ad77e-fe46-4328-b0e2-98f3a05c554c', 'Other', 0, 1, 1, 1, '2018-01-01 00:00+00', '2018-01-01 00:00+00');

INSERT INTO approval_status (id, uuid, status, created_date_time, last_modified_date_time)
VALUES (1, 'e7e3cdc6-510c-43e3-81d7-85450ce66ba0', 'Pending', '2020-01-01 00:00+00', '2020-01-01 00:00+00'),
       (2, 'db5ce7a3-0b21-4f5b-807c-814dd96ebc1d', 'Approved', '2020-01-01 00:00+00', '2020-01-01 00:00+00'),
       (3, '2c2cdf95-ed0d-4328-9431-14d65a6e82e6', 'Rejected', '2020-01-01 00:00+00', '2020-01-01 00:00+00');
SELECT setval('approval_status_id_seq', 3);

-- The last rows of avni-server v17.1.0's Flyway history (the versioned
-- files in application order, then the repeatables); checksums left out.
INSERT INTO schema_version (installed_rank, version, description, type, script, checksum, installed_by,
                            execution_time, success)
VALUES (479, '1.405', 'RevertIndexableRLSOrgPolicies', 'SQL', 'V1_405__RevertIndexableRLSOrgPolicies.sql', NULL, 'openchs', 10, true),
       (480, '1.406', 'IndexableRLSOrgPoliciesSingleEval', 'SQL', 'V1_406__IndexableRLSOrgPoliciesSingleEval.sql',
        NULL, 'openchs', 10, true),
       (481, '1.407', 'VoidLegacyTasksStandardReportCardType', 'SQL',
        'V1_407__VoidLegacyTasksStandardReportCardType.sql', NULL, 'openchs', 10, true),
       (482, NULL, 'Functions', 'SQL', 'R__Functions.sql', NULL, 'openchs', 10, true),
       (483, NULL, 'UtilityFunctions', 'SQL', 'R__UtilityFunctions.sql', NULL, 'openchs', 10, true),
       (484, NULL, 'UtilityViews', 'SQL', 'R__UtilityViews.sql', NULL, 'openchs', 10, true),
       (485, NULL, 'Views', 'SQL', 'R__Views.sql', NULL, 'openchs', 10, true);
