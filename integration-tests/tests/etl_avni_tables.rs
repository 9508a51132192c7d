//! avni-etl's `users`, `sync_telemetry` and group-to-member tables
//! (issue 16, first part) on the avni-server fixture, its rows written as
//! avni-server writes them (`org_data.sql` and `org_memberships.sql` under
//! `SET ROLE <db_user>`, RLS on): their names, columns and metadata as
//! avni-etl has them, the values of every column, changes arriving
//! incrementally (a new sync, an edited user, a membership ended, a
//! household's head leaving and another arriving), a group's schema with
//! every member's rows, RecreateSchema rebuilding them, and only the
//! organisation's role reading them.
//!
//! Where it differs from avni-etl on purpose: a household without a head
//! of household gets its rows, with no "Head of household ID" (avni-etl
//! writes none for it).

use etl_service::engine::entity::{EntityKind, EntityRef};
use etl_service::engine::{self, NoProgress, RunOptions, RunReport};
use integration_tests::avni_server::{AvniOrg, AvniServerDb, pg_error};
use integration_tests::etl::context;
use service_kit::sql::{quote_literal, quote_qualified};
use tokio_postgres::Client;

/// The households, groups, memberships and syncs of one organisation.
const MEMBERSHIPS: &str = include_str!("../sql/avni_server/org_memberships.sql");

fn org_ref(org: &AvniOrg) -> EntityRef {
    EntityRef {
        uuid: org.uuid.parse().expect("uuid"),
        kind: EntityKind::Organisation,
    }
}

/// An organisation made and filled as avni-server does, with 3 subjects
/// and its memberships and syncs.
async fn organisation(avni: &AvniServerDb, key: &str) -> AvniOrg {
    let org = avni.create_organisation(key, None).await;
    avni.fill(&org, 3).await;
    let session = avni.session(&org.db_user).await;
    session
        .batch_execute(&format!(
            "SET fixture.key = {}; {MEMBERSHIPS}",
            quote_literal(&org.key)
        ))
        .await
        .unwrap_or_else(|e| panic!("org_memberships.sql for {key}: {}", pg_error(&e)));
    org
}

async fn migrated(avni: &AvniServerDb) {
    service_kit::db::run_pending_migrations(&avni.owner_url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
}

async fn run(avni: &AvniServerDb, entity: EntityRef, recreate: bool) -> RunReport {
    engine::run_entity(
        &context(&avni.owner_url),
        entity,
        &RunOptions {
            recreate,
            ..RunOptions::default()
        },
        &NoProgress,
    )
    .await
    .unwrap_or_else(|e| panic!("run of {entity}: {e}"))
}

/// Rows a run upserted into `table`.
fn upserted(report: &RunReport, table: &str) -> u64 {
    report
        .tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("{table} not in the run: {:?}", report.tables))
        .rows_upserted
}

/// `sql`'s rows, each as its columns' text joined with `|` (NULL as `-`).
async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i).unwrap_or_else(|| "-".into()))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// A table's columns in table order, as PostgreSQL has them.
async fn columns(client: &Client, schema: &str, table: &str) -> Vec<String> {
    texts(
        client,
        &format!(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
            quote_literal(schema),
            quote_literal(table)
        ),
    )
    .await
}

/// The membership rows of a table: member's first name, role, head's
/// first name, start, end, voided.
async fn memberships(client: &Client, schema: &str, table: &str, head: bool) -> Vec<String> {
    let head_name = if head {
        "(SELECT first_name FROM public.individual WHERE id = t.\"Head of household ID\")"
    } else {
        "NULL::text"
    };
    texts(
        client,
        &format!(
            "SELECT g.first_name, m.first_name, t.role, {head_name}, \
                    to_char(t.membership_start_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), \
                    to_char(t.membership_end_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'), t.is_voided::text \
             FROM {} t JOIN public.individual g ON g.id = t.group_subject_id \
             JOIN public.individual m ON m.id = t.member_subject_id \
             ORDER BY g.first_name, m.first_name",
            quote_qualified(schema, table)
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn users_syncs_and_memberships_are_avni_etls_tables_kept_in_step() {
    let avni = AvniServerDb::new().await;
    let org = organisation(&avni, "homes").await;
    migrated(&avni).await;
    let first = run(&avni, org_ref(&org), false).await;
    let owner = avni.owner().await;
    let s = org.schema_name.as_str();

    // The tables, with avni-etl's names, types and columns.
    let described = texts(
        &owner,
        &format!(
            "SELECT t.name, t.type, (t.subject_type_uuid IS NULL)::text, \
                    (SELECT st.name FROM public.subject_type st WHERE st.uuid = t.group_subject_type_uuid), \
                    (SELECT st.name FROM public.subject_type st WHERE st.uuid = t.member_subject_type_uuid) \
             FROM public.table_metadata t WHERE t.schema_name = {} \
               AND t.type IN ('User', 'SyncTelemetry', 'GroupToMember', 'HouseholdToMember') ORDER BY t.name",
            quote_literal(s)
        ),
    )
    .await;
    assert_eq!(
        described,
        vec![
            "household_person|HouseholdToMember|true|Household|Person",
            "self_help_group_person|GroupToMember|true|Self Help Group|Person",
            "sync_telemetry|SyncTelemetry|true|-|-",
            "users|User|true|-|-",
        ]
    );
    let common = [
        "uuid",
        "is_voided",
        "created_by_id",
        "last_modified_by_id",
        "created_date_time",
        "last_modified_date_time",
        "organisation_id",
    ];
    let mut users = vec![
        "id",
        "username",
        "catchment_id",
        "email",
        "phone_number",
        "name",
    ];
    users.extend(common);
    assert_eq!(columns(&owner, s, "users").await, users);
    let mut telemetry = vec!["id"];
    telemetry.extend(common);
    telemetry.extend([
        "user_id",
        "sync_status",
        "sync_start_time",
        "sync_end_time",
        "device_name",
        "android_version",
        "app_version",
        "device_info",
        "sync_source",
        "latest_approval_status",
    ]);
    assert_eq!(columns(&owner, s, "sync_telemetry").await, telemetry);
    let mut group = vec!["id"];
    group.extend(common);
    group.extend([
        "group_subject_id",
        "member_subject_id",
        "role",
        "membership_start_date",
        "membership_end_date",
    ]);
    assert_eq!(columns(&owner, s, "self_help_group_person").await, group);
    group.push("Head of household ID");
    assert_eq!(columns(&owner, s, "household_person").await, group);
    // The metadata describes every column the tables have.
    for table in [
        "users",
        "sync_telemetry",
        "household_person",
        "self_help_group_person",
    ] {
        let described = texts(
            &owner,
            &format!(
                "SELECT c.name FROM public.column_metadata c JOIN public.table_metadata t ON t.id = c.table_id \
                 WHERE t.schema_name = {} AND t.name = {} ORDER BY c.id",
                quote_literal(s),
                quote_literal(table)
            ),
        )
        .await;
        let mut physical = columns(&owner, s, table).await;
        let mut described_sorted = described.clone();
        physical.sort();
        described_sorted.sort();
        assert_eq!(described_sorted, physical, "{table}");
    }

    // Row counts and values.
    for (table, rows) in [
        ("users", 2),
        ("sync_telemetry", 3),
        ("household_person", 3),
        ("self_help_group_person", 2),
    ] {
        assert_eq!(upserted(&first, table), rows, "{table}");
    }
    assert_eq!(
        texts(
            &owner,
            &format!(
                "SELECT t.username, t.name, t.email, t.catchment_id::text, t.is_voided::text, \
                        (t.organisation_id = {org})::text, \
                        (t.uuid = u.uuid AND t.created_by_id = u.created_by_id \
                         AND t.last_modified_by_id = u.last_modified_by_id \
                         AND t.created_date_time = u.created_date_time \
                         AND t.last_modified_date_time = u.last_modified_date_time)::text \
                 FROM {} t JOIN public.users u ON u.id = t.id ORDER BY t.username",
                quote_qualified(s, "users"),
                org = org.id
            )
        )
        .await,
        vec![
            "admin@homes|Admin of homes|-|-|false|true|true",
            "worker@homes|Worker of homes|-|-|false|true|true",
        ]
    );
    assert_eq!(
        texts(
            &owner,
            &format!(
                "SELECT u.username, t.sync_status, to_char(t.sync_start_time AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), \
                        to_char(t.sync_end_time AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), t.device_name, \
                        t.android_version, t.app_version, (t.device_info::jsonb ->> 'model'), t.sync_source, \
                        t.latest_approval_status, (t.uuid = st.uuid AND t.user_id = st.user_id \
                        AND t.last_modified_date_time = st.last_modified_date_time)::text \
                 FROM {} t JOIN public.users u ON u.id = t.user_id \
                 JOIN public.sync_telemetry st ON st.id = t.id ORDER BY t.sync_start_time",
                quote_qualified(s, "sync_telemetry")
            )
        )
        .await,
        vec![
            "worker@homes|complete|05-02 08:00|05-02 08:02|Pixel 1|14|10.1|Pixel 1|manual|-|true",
            "worker@homes|incomplete|05-03 08:00|05-03 08:02|Pixel 2|14|10.2|Pixel 2|automatic|-|true",
            "worker@homes|complete|05-04 08:00|05-04 08:02|Pixel 3|14|10.3|Pixel 3|automatic|-|true",
        ]
    );
    // Household 2 has no head: its member's row is there, with no head.
    assert_eq!(
        memberships(&owner, s, "household_person", true).await,
        vec![
            "Household 1 of homes|First1|Head of household|First1|2025-01-10 09:00|-|false",
            "Household 1 of homes|First2|Member|First1|2025-01-10 09:05|-|false",
            "Household 2 of homes|First3|Member|-|2025-01-11 09:00|-|false",
        ]
    );
    assert_eq!(
        memberships(&owner, s, "self_help_group_person", false).await,
        vec![
            "SHG 1 of homes|First1|Member|-|2025-01-12 09:00|-|false",
            "SHG 1 of homes|First3|Member|-|2025-01-12 09:10|-|false",
        ]
    );
    let ids = texts(
        &owner,
        &format!(
            "SELECT (count(*) = count(*) FILTER (WHERE t.id = gs.id AND t.uuid = gs.uuid \
                    AND t.created_by_id = gs.created_by_id))::text \
             FROM {} t JOIN public.group_subject gs ON gs.id = t.id",
            quote_qualified(s, "household_person")
        ),
    )
    .await;
    assert_eq!(
        ids,
        vec!["true"],
        "id, uuid and audit ids are the membership's"
    );

    // Nothing changed: nothing to sync.
    let quiet = run(&avni, org_ref(&org), false).await;
    assert_eq!(quiet.rows_upserted(), 0, "{:?}", quiet.tables);

    // Changes arrive, written as avni-server writes them: a new sync, an
    // edited user, household 1's member leaving, household 2 getting a
    // head.
    let session = avni.session(&org.db_user).await;
    session
        .batch_execute(
            "INSERT INTO public.sync_telemetry (uuid, user_id, organisation_id, sync_status, sync_start_time, \
                 sync_end_time, device_name, app_version, sync_source, created_by_id, last_modified_by_id, \
                 created_date_time, last_modified_date_time) \
             SELECT gen_random_uuid()::text, id, organisation_id, 'complete', timestamptz '2025-06-01 08:00+00', \
                 timestamptz '2025-06-01 08:03+00', 'Pixel 9', '11.0', 'manual', id, id, now(), now() \
             FROM public.users WHERE username = 'worker@homes'; \
             UPDATE public.users SET email = 'worker@example.org', last_modified_date_time = now() \
             WHERE username = 'worker@homes'; \
             UPDATE public.group_subject SET membership_end_date = timestamptz '2025-06-01 00:00+00', \
                 last_modified_date_time = now() WHERE uuid = md5('homes:membership:h1 member')::uuid::text; \
             INSERT INTO public.group_subject (uuid, group_subject_id, member_subject_id, group_role_id, \
                 membership_start_date, organisation_id, version, created_by_id, last_modified_by_id, \
                 created_date_time, last_modified_date_time, member_subject_address_id, group_subject_address_id) \
             SELECT gen_random_uuid()::text, h.id, p.id, r.id, timestamptz '2025-06-02 10:00+00', h.organisation_id, \
                 0, h.created_by_id, h.created_by_id, now(), now(), p.address_id, h.address_id \
             FROM public.individual h, public.individual p, public.group_role r \
             WHERE h.first_name = 'Household 2 of homes' AND p.first_name = 'First2' \
               AND r.role = 'Head of household'",
        )
        .await
        .unwrap_or_else(|e| panic!("changes: {}", pg_error(&e)));
    let later = run(&avni, org_ref(&org), false).await;
    assert_eq!(upserted(&later, "sync_telemetry"), 1);
    assert_eq!(upserted(&later, "users"), 1);
    // Both households changed: every one of their memberships is
    // written again (the heads are the household's).
    assert_eq!(upserted(&later, "household_person"), 4);
    assert_eq!(upserted(&later, "self_help_group_person"), 0);
    assert_eq!(
        texts(
            &owner,
            &format!(
                "SELECT count(*)::text, max(email) FROM {}",
                quote_qualified(s, "users")
            )
        )
        .await,
        vec!["2|worker@example.org"]
    );
    assert_eq!(
        texts(
            &owner,
            &format!(
                "SELECT count(*)::text, max(device_name) FROM {}",
                quote_qualified(s, "sync_telemetry")
            )
        )
        .await,
        vec!["4|Pixel 9"]
    );
    assert_eq!(
        memberships(&owner, s, "household_person", true).await,
        vec![
            "Household 1 of homes|First1|Head of household|First1|2025-01-10 09:00|-|false",
            "Household 1 of homes|First2|Member|First1|2025-01-10 09:05|2025-06-01|false",
            "Household 2 of homes|First2|Head of household|First2|2025-06-02 10:00|-|false",
            "Household 2 of homes|First3|Member|First2|2025-01-11 09:00|-|false",
        ]
    );

    // The head leaves household 1: its rows have no head any more.
    session
        .batch_execute(
            "UPDATE public.group_subject SET membership_end_date = timestamptz '2025-07-01 00:00+00', \
                 last_modified_date_time = now() WHERE uuid = md5('homes:membership:h1 head')::uuid::text",
        )
        .await
        .unwrap_or_else(|e| panic!("head leaves: {}", pg_error(&e)));
    let left = run(&avni, org_ref(&org), false).await;
    assert_eq!(upserted(&left, "household_person"), 2);
    assert_eq!(
        memberships(&owner, s, "household_person", true).await[..2],
        [
            "Household 1 of homes|First1|Head of household|-|2025-01-10 09:00|2025-07-01|false",
            "Household 1 of homes|First2|Member|-|2025-01-10 09:05|2025-06-01|false",
        ]
    );

    // RecreateSchema rebuilds them from scratch, to the same rows.
    let before: Vec<Vec<String>> = table_dumps(&owner, s).await;
    let rebuilt = run(&avni, org_ref(&org), true).await;
    assert!(rebuilt.tables_dropped >= 4);
    assert_eq!(upserted(&rebuilt, "household_person"), 4);
    assert_eq!(table_dumps(&owner, s).await, before);
}

/// Every row of the four tables, as JSON text, in id order.
async fn table_dumps(client: &Client, schema: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for table in [
        "users",
        "sync_telemetry",
        "household_person",
        "self_help_group_person",
    ] {
        all.push(
            texts(
                client,
                &format!(
                    "SELECT to_jsonb(t)::text FROM {} t ORDER BY t.id",
                    quote_qualified(schema, table)
                ),
            )
            .await,
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_schema_holds_every_members_rows_and_only_the_roles_read_them() {
    let avni = AvniServerDb::new().await;
    let north = organisation(&avni, "north").await;
    let south = organisation(&avni, "south").await;
    let group = avni
        .create_group("league", vec![north.clone(), south.clone()])
        .await;
    migrated(&avni).await;
    let group_ref = EntityRef {
        uuid: group.uuid.parse().expect("uuid"),
        kind: EntityKind::OrganisationGroup,
    };
    let report = run(&avni, group_ref, false).await;
    // Each member defines its own subject types (same names): one table
    // per type, named apart.
    let owner = avni.owner().await;
    let g = group.schema_name.as_str();
    assert_eq!(upserted(&report, "users"), 4);
    assert_eq!(upserted(&report, "sync_telemetry"), 6);
    let per_org = texts(
        &owner,
        &format!(
            "SELECT o.name, count(*)::text FROM {} t JOIN public.organisation o ON o.id = t.organisation_id \
             GROUP BY o.name ORDER BY o.name",
            quote_qualified(g, "sync_telemetry")
        ),
    )
    .await;
    assert_eq!(per_org, vec!["Org north|3", "Org south|3"]);
    let households = texts(
        &owner,
        &format!(
            "SELECT name FROM public.table_metadata WHERE schema_name = {} AND type = 'HouseholdToMember' \
             ORDER BY name",
            quote_literal(g)
        ),
    )
    .await;
    assert_eq!(households.len(), 2, "{households:?}");
    let mut rows = 0;
    for table in &households {
        rows += upserted(&report, table);
    }
    assert_eq!(rows, 6, "each member's 3 memberships");
    // One watermark per member organisation for each table.
    let marks = texts(
        &owner,
        &format!(
            "SELECT count(DISTINCT w.organisation_id)::text FROM etl_service.watermark w \
             JOIN public.table_metadata t ON t.id = w.table_metadata_id \
             WHERE t.schema_name = {} AND t.name = 'users'",
            quote_literal(g)
        ),
    )
    .await;
    assert_eq!(marks, vec!["2"]);
    let quiet = run(&avni, group_ref, false).await;
    assert_eq!(quiet.rows_upserted(), 0, "{:?}", quiet.tables);

    // The group's role and its members' read the group's tables; an
    // organisation outside reads neither the group's nor a member's own.
    let outsider = avni.create_organisation("outsider", None).await;
    let north_own = run(&avni, org_ref(&north), false).await;
    assert_eq!(upserted(&north_own, "users"), 2);
    for (role, schema, readable) in [
        (&group.db_user, g, true),
        (&north.db_user, g, true),
        (&north.db_user, north.schema_name.as_str(), true),
        (&outsider.db_user, g, false),
        (&outsider.db_user, north.schema_name.as_str(), false),
        (&south.db_user, north.schema_name.as_str(), false),
    ] {
        let session = avni.session(role).await;
        for table in ["users", "sync_telemetry"] {
            let result = session
                .simple_query(&format!(
                    "SELECT count(*) FROM {}",
                    quote_qualified(schema, table)
                ))
                .await;
            match (readable, result) {
                (true, Ok(_)) => {}
                (false, Err(e)) => assert!(
                    pg_error(&e).starts_with("42501"),
                    "{role} on {schema}.{table}: {}",
                    pg_error(&e)
                ),
                (true, Err(e)) => panic!("{role} cannot read {schema}.{table}: {}", pg_error(&e)),
                (false, Ok(_)) => panic!("{role} reads {schema}.{table}"),
            }
        }
    }
}
