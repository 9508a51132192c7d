//! The randomised equivalence test: a seeded sequence of source edits
//! (insert, edit, void, cancel, un-cancel, exit, un-exit) and metadata
//! changes (add, rename, remove, restore questions; change a concept's
//! type; rename subject types, programs and encounter types; void and
//! restore form mappings), with an incremental run after each step. After
//! every step the schema equals a build from scratch of the same source
//! (made by a RecreateSchema run into a second schema): the same live
//! tables, the same live columns with the same types, the same rows, the
//! same view rows. Voided tables and columns are history a build from
//! scratch does not have, so they are left out of the comparison; the
//! metadata must describe the incremental schema exactly.
//!
//! `EQUIVALENCE_SEED` and `EQUIVALENCE_STEPS` change the sequence; a
//! failure prints the steps that led to it.

use etl_service::engine::RunOptions;
use integration_tests::avni::random_edits::SourceEditor;
use integration_tests::avni::{Size, Spec};
use integration_tests::etl::{
    EtlFixture, assert_metadata_describes_schema, live_schema, org_ref, view_rows,
};
use tokio_postgres::Client;

const VIEWS: [&str; 5] = [
    "subject_view",
    "enrolment_view",
    "completed_visits_view",
    "due_visits_view",
    "overdue_visits_view",
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct World<'a> {
    f: &'a EtlFixture,
    editor: SourceEditor<'a>,
}

impl World<'_> {
    fn client(&self) -> &Client {
        &self.f.client
    }

    /// Builds the same source from scratch into `fresh`.
    async fn build_fresh(&self, fresh: &str) {
        let set_schema = |schema: String| async move {
            self.client()
                .execute(
                    "UPDATE organisation SET schema_name = $2 WHERE id = $1",
                    &[&self.editor.org.id, &schema],
                )
                .await
                .expect("schema name");
        };
        set_schema(fresh.to_string()).await;
        let built = self
            .f
            .run(
                org_ref(&self.editor.org),
                &RunOptions {
                    recreate: true,
                    ..RunOptions::default()
                },
            )
            .await;
        set_schema(self.editor.org.schema_name.clone()).await;
        if let Err(e) = built {
            panic!(
                "fresh build failed: {e}\nsteps:\n{}",
                self.editor.log.join("\n")
            );
        }
    }

    async fn assert_equivalent(&self, step: usize, fresh: &str) {
        let client = self.client();
        let schema = self.editor.org.schema_name.as_str();
        let incremental = live_schema(client, schema).await;
        let scratch = live_schema(client, fresh).await;
        let context = || format!("after step {step}; steps:\n{}", self.editor.log.join("\n"));
        assert_eq!(
            incremental.keys().collect::<Vec<_>>(),
            scratch.keys().collect::<Vec<_>>(),
            "live tables differ {}",
            context()
        );
        for (table, (columns, rows)) in &incremental {
            let (fresh_columns, fresh_rows) = &scratch[table];
            assert_eq!(columns, fresh_columns, "columns of {table} {}", context());
            if rows != fresh_rows {
                let first = rows
                    .iter()
                    .zip(fresh_rows)
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("incremental {a}\nfresh       {b}"))
                    .unwrap_or_else(|| format!("{} rows vs {}", rows.len(), fresh_rows.len()));
                panic!("rows of {table} differ: {first}\n{}", context());
            }
        }
        for view in VIEWS {
            assert_eq!(
                view_rows(client, schema, view).await,
                view_rows(client, fresh, view).await,
                "{view} {}",
                context()
            );
        }
        assert_metadata_describes_schema(client, schema).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_equal_a_build_from_scratch_after_every_step() {
    let seed = env_number("EQUIVALENCE_SEED", 20261123);
    let steps = env_number("EQUIVALENCE_STEPS", 50) as usize;
    eprintln!("equivalence: seed {seed}, {steps} steps");
    let f = EtlFixture::new(&Spec {
        seed: 51,
        size: Size {
            subjects_per_type: 4,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    })
    .await;
    let org = f.org(0).clone();
    let fresh = format!("{}_fresh", org.schema_name);
    let mut world = World {
        f: &f,
        editor: SourceEditor::new(&f.client, org.clone(), seed),
    };
    f.run_org(&org).await;
    let mut kinds = std::collections::BTreeSet::new();
    for step in 1..=steps {
        world.editor.step().await;
        if let Err(e) = f.run(org_ref(&org), &RunOptions::default()).await {
            panic!(
                "incremental run failed after step {step}: {e}\nsteps:\n{}",
                world.editor.log.join("\n")
            );
        }
        world.build_fresh(&fresh).await;
        world.assert_equivalent(step, &fresh).await;
        if let Some(last) = world.editor.log.last() {
            kinds.insert(last.split(' ').next().unwrap_or_default().to_string());
        }
    }
    eprintln!("steps:\n{}", world.editor.log.join("\n"));
    // The sequence must have exercised the changes it is about.
    for kind in ["insert", "edit", "add", "rename", "concept", "void"] {
        assert!(
            kinds.contains(kind),
            "no {kind:?} step in this sequence: {kinds:?}"
        );
    }
}
