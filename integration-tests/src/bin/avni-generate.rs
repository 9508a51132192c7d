//! Fills an empty database with the Avni source tables and generated
//! organisations, for the demo, benchmarks and trying `etl-service run-once`
//! by hand. Prints the organisations' uuids.
//!
//! `avni-generate --database-url postgres://postgres@127.0.0.1:5432/demo --subjects 1000`

use clap::Parser;
use integration_tests::avni::{Size, Spec, generate};
use std::time::Instant;

#[derive(Parser)]
#[command(name = "avni-generate")]
struct Args {
    /// An existing, empty database (the source tables are created in it).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Standalone organisations.
    #[arg(long, default_value_t = 1)]
    organisations: usize,
    /// Members of one organisation group (0 for none).
    #[arg(long, default_value_t = 0)]
    group_members: usize,
    /// Subjects per subject type (four types).
    #[arg(long, default_value_t = 12)]
    subjects: i64,
    /// Program encounters per encounter type per enrolment.
    #[arg(long, default_value_t = 2)]
    encounters_per_enrolment: i64,
    /// General encounters per encounter type per subject.
    #[arg(long, default_value_t = 2)]
    encounters_per_subject: i64,
    /// Extra questions per form.
    #[arg(long, default_value_t = 0)]
    extra_questions: usize,
    /// Hostile names (quotes, semicolons, Hindi, 100+ characters, ...).
    #[arg(long)]
    hostile: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = integration_tests::postgres::connect(&args.database_url).await?;
    let spec = Spec {
        seed: args.seed,
        organisations: args.organisations,
        group_members: args.group_members,
        hostile: args.hostile,
        size: Size {
            subjects_per_type: args.subjects,
            encounters_per_enrolment: args.encounters_per_enrolment,
            encounters_per_subject: args.encounters_per_subject,
        },
        extra_questions: args.extra_questions,
    };
    let started = Instant::now();
    let world = generate(&client, &spec).await;
    for org in &world.organisations {
        println!(
            "organisation {} {:?} schema {:?}",
            org.uuid, org.name, org.schema_name
        );
    }
    if let Some(group) = &world.group {
        println!(
            "organisation group {} {:?} schema {:?} members {}",
            group.uuid,
            group.name,
            group.schema_name,
            group
                .members
                .iter()
                .map(|m| m.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!("generated in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
