//! Parsing gRPC requests into domain types, in one place: every field a
//! caller sends is checked here (present, well formed, within bounds, a
//! known enum value) and a bad one is an `InvalidArgument` whose message
//! names the field by its path (`entities[3].uuid`), so the handlers in
//! [`crate::api::handlers`] stay thin and the domain never sees unchecked input.

use crate::engine::entity::{EntityKind, EntityRef};
use crate::engine::schema::name_check;
use crate::error::Error;
use avni_proto::etl::v1 as pb;
use service_kit::request::Paging;
use service_kit::request::shorten;

/// Most characters of a name: Avni stores names as `varchar(255)`, so a
/// longer proposed name could never be saved.
pub const MAX_NAME_CHARS: usize = 255;

/// Most entities a proposed set may hold, so one call cannot make the
/// service plan without bound.
pub const MAX_PROPOSED: usize = 5000;

/// Most entities of one BatchGetJobs call.
pub const MAX_BATCH: usize = 1000;

/// How ListJobRuns pages: tokens are `before-<run id>`.
const PAGING: Paging = Paging {
    default_size: 20,
    max_size: 500,
    token_prefix: "before-",
};

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// Checks an `Entity` (the field at `path`): present, a canonical uuid, a
/// known type.
pub fn entity(path: &str, entity: Option<&pb::Entity>) -> Result<EntityRef, Error> {
    let entity = entity.ok_or_else(|| {
        invalid(format!(
            "{path} is required: {{\"uuid\": \"<uuid>\", \"type\": \"ENTITY_TYPE_ORGANISATION\"}}"
        ))
    })?;
    let raw = entity.uuid.as_str();
    if raw.trim().is_empty() {
        return Err(invalid(format!("{path}.uuid is required")));
    }
    // Only the canonical hyphenated form the contract documents: the
    // source stores uuids as text, so `{...}`, `urn:uuid:` or 32 bare digits
    // would parse here and then never match a row.
    let uuid = uuid::Uuid::try_parse(raw)
        .ok()
        .filter(|u| raw.len() == 36 && (u.to_string() == raw.to_ascii_lowercase()))
        .ok_or_else(|| {
            invalid(format!(
                "{path}.uuid {:?} is not a uuid (expected 8-4-4-4-12 hexadecimal digits)",
                shorten(raw, 80)
            ))
        })?;
    let kind = match pb::EntityType::try_from(entity.r#type) {
        Ok(pb::EntityType::Organisation) => EntityKind::Organisation,
        Ok(pb::EntityType::OrganisationGroup) => EntityKind::OrganisationGroup,
        Ok(pb::EntityType::Unspecified) => {
            return Err(invalid(format!(
                "{path}.type is required: ENTITY_TYPE_ORGANISATION or ENTITY_TYPE_ORGANISATION_GROUP"
            )));
        }
        Err(_) => {
            return Err(invalid(format!(
                "{path}.type {} is not a known EntityType (1 = ENTITY_TYPE_ORGANISATION, 2 = ENTITY_TYPE_ORGANISATION_GROUP)",
                entity.r#type
            )));
        }
    };
    Ok(EntityRef { uuid, kind })
}

/// The entities of a BatchGetJobs call.
pub fn entities(requested: &[pb::Entity]) -> Result<Vec<EntityRef>, Error> {
    if requested.len() > MAX_BATCH {
        return Err(invalid(format!(
            "entities holds {} entities; at most {MAX_BATCH} per call",
            requested.len()
        )));
    }
    requested
        .iter()
        .enumerate()
        .map(|(i, e)| entity(&format!("entities[{i}]"), Some(e)))
        .collect()
}

/// A name of a proposed entity (the field at `path`). Empty names are left
/// to ValidateNames, which reports them as problems; what cannot be a name
/// at all is refused.
fn name(path: &str, value: String) -> Result<String, Error> {
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "{path} is {chars} characters long; Avni names hold at most {MAX_NAME_CHARS}"
        )));
    }
    if value.contains('\0') {
        return Err(invalid(format!(
            "{path} {:?} contains a NUL character, which PostgreSQL text cannot hold",
            shorten(&value, 80)
        )));
    }
    Ok(value)
}

/// A proposed set of ValidateNames, every name checked.
pub fn proposed_schema(p: pb::ProposedSchema) -> Result<name_check::ProposedSchema, Error> {
    let count = p.subject_types.len() + p.programs.len() + p.encounter_types.len();
    if count > MAX_PROPOSED {
        return Err(invalid(format!(
            "proposed may hold at most {MAX_PROPOSED} subject_types, programs and encounter_types together; got {count}"
        )));
    }
    if count == 0 {
        return Err(invalid(
            "proposed is empty: give subject_types, programs or encounter_types".into(),
        ));
    }
    let subject_types = p
        .subject_types
        .into_iter()
        .enumerate()
        .map(|(i, s)| name(&format!("proposed.subject_types[{i}].name"), s.name))
        .collect::<Result<_, _>>()?;
    let programs = p
        .programs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(name_check::ProposedProgram {
                name: name(&format!("proposed.programs[{i}].name"), p.name)?,
                subject_type_name: name(
                    &format!("proposed.programs[{i}].subject_type_name"),
                    p.subject_type_name,
                )?,
                has_exit_form: p.has_exit_form,
            })
        })
        .collect::<Result<_, Error>>()?;
    let encounter_types = p
        .encounter_types
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(name_check::ProposedEncounterType {
                name: name(&format!("proposed.encounter_types[{i}].name"), e.name)?,
                subject_type_name: name(
                    &format!("proposed.encounter_types[{i}].subject_type_name"),
                    e.subject_type_name,
                )?,
                program_name: name(
                    &format!("proposed.encounter_types[{i}].program_name"),
                    e.program_name,
                )?,
                has_cancel_form: e.has_cancel_form,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(name_check::ProposedSchema {
        subject_types,
        programs,
        encounter_types,
    })
}

/// How BatchGetJobs pages the enabled jobs: tokens are `after-<job id>`.
const JOB_PAGING: Paging = Paging {
    default_size: 100,
    max_size: 500,
    token_prefix: "after-",
};

/// A page of BatchGetJobs without entities: how many jobs, and the job id
/// the page starts after (0 for the first page).
pub fn jobs_page(page_size: i32, token: &str) -> Result<(i64, i64), Error> {
    let (size, after) = JOB_PAGING.parse(page_size, token).map_err(invalid)?;
    Ok((size, after.unwrap_or(0)))
}

/// A page of ListJobRuns: how many rows, and the id below which the page
/// starts (tokens are `before-<id>`).
pub fn page(page_size: i32, token: &str) -> Result<(i64, Option<i64>), Error> {
    PAGING.parse(page_size, token).map_err(invalid)
}

/// A run id (WatchJobRun's `run_id`).
pub fn run_id(id: i64) -> Result<i64, Error> {
    if id <= 0 {
        return Err(invalid(format!(
            "run_id must be a positive run id, got {id}"
        )));
    }
    Ok(id)
}

/// Checks a GetUserActivity request's days, users and limit.
pub fn activity_filter(
    r: &pb::GetUserActivityRequest,
) -> Result<crate::reports::ActivityFilter, Error> {
    let day = |path: &str, value: &str| -> Result<Option<chrono::NaiveDate>, Error> {
        if value.is_empty() {
            return Ok(None);
        }
        chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                invalid(format!(
                    "{path} must be a day as YYYY-MM-DD (or empty); got {:?}",
                    shorten(value, 80)
                ))
            })
    };
    if r.user_ids.len() > MAX_BATCH {
        return Err(invalid(format!(
            "user_ids names {} users; at most {MAX_BATCH}",
            r.user_ids.len()
        )));
    }
    Ok(crate::reports::ActivityFilter {
        start: day("start_date", &r.start_date)?,
        end: day("end_date", &r.end_date)?,
        user_ids: r.user_ids.clone(),
        limit: match r.limit {
            0 => crate::reports::DEFAULT_LIMIT,
            n => i64::from(n),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_validation() {
        let ok = pb::Entity {
            uuid: "6a1d1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50".into(),
            r#type: pb::EntityType::Organisation as i32,
        };
        assert_eq!(
            entity("entity", Some(&ok)).expect("valid").kind,
            EntityKind::Organisation
        );
        let upper = pb::Entity {
            uuid: ok.uuid.to_uppercase(),
            ..ok.clone()
        };
        assert!(entity("entity", Some(&upper)).is_ok(), "case is not form");
        let with = |uuid: &str, r#type: i32| {
            Some(pb::Entity {
                uuid: uuid.into(),
                r#type,
            })
        };
        let cases = [
            (None, "entity is required"),
            (with("", 1), "entity.uuid is required"),
            (
                with("not-a-uuid", 1),
                "entity.uuid \"not-a-uuid\" is not a uuid",
            ),
            (with("6a1d1a4e3d5b4f6e9d2a0b1c2d3e4f50", 1), "is not a uuid"),
            (
                with("{6a1d1a4e-3d5b-4f6e-9d2a-0b1c2d3e4f50}", 1),
                "is not a uuid",
            ),
            (with(&ok.uuid, 0), "entity.type is required"),
            (
                with(&ok.uuid, 42),
                "entity.type 42 is not a known EntityType",
            ),
            (
                with(&ok.uuid, -1),
                "entity.type -1 is not a known EntityType",
            ),
        ];
        for (e, expected) in cases {
            let err = entity("entity", e.as_ref()).expect_err("must be rejected");
            assert!(matches!(err, Error::InvalidArgument(_)));
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn a_huge_value_is_not_echoed() {
        let huge = "x".repeat(1 << 20);
        let err = entity(
            "entity",
            Some(&pb::Entity {
                uuid: huge,
                r#type: 1,
            }),
        )
        .expect_err("rejected");
        assert!(err.to_string().len() < 300, "{err}");
    }

    #[test]
    fn pages_and_run_ids() {
        assert_eq!(page(0, "").expect("default"), (20, None));
        assert_eq!(page(i32::MAX, "before-7").expect("clamped"), (500, Some(7)));
        for (size, token) in [
            (-1, ""),
            (i32::MIN, ""),
            (1, "7"),
            (1, "before-0"),
            (1, "before-x"),
        ] {
            assert!(matches!(page(size, token), Err(Error::InvalidArgument(_))));
        }
        assert!(run_id(0).is_err() && run_id(-5).is_err() && run_id(3).is_ok());
    }

    #[test]
    fn proposed_names_are_bounded() {
        let long = pb::ProposedSchema {
            subject_types: vec![pb::ProposedSubjectType {
                name: "a".repeat(256),
            }],
            ..Default::default()
        };
        let err = proposed_schema(long).expect_err("too long");
        assert!(
            err.to_string().contains("proposed.subject_types[0].name"),
            "{err}"
        );
        let nul = pb::ProposedSchema {
            encounter_types: vec![pb::ProposedEncounterType {
                name: "a\0b".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = proposed_schema(nul).expect_err("NUL");
        assert!(
            err.to_string().contains("proposed.encounter_types[0].name"),
            "{err}"
        );
    }

    #[test]
    fn activity_filters_are_checked() {
        let request = |start: &str, end: &str, limit: i32| pb::GetUserActivityRequest {
            start_date: start.into(),
            end_date: end.into(),
            limit,
            ..Default::default()
        };
        let f = activity_filter(&request("2026-01-01", "", 0)).expect("valid");
        assert_eq!(f.start, chrono::NaiveDate::from_ymd_opt(2026, 1, 1));
        assert_eq!((f.end, f.limit), (None, crate::reports::DEFAULT_LIMIT));
        let e = activity_filter(&request("01/02/2026", "", 0)).expect_err("bad day");
        assert!(e.to_string().contains("start_date must be a day"), "{e}");
        let e = activity_filter(&request("", "2026-02-30", 0)).expect_err("no such day");
        assert!(e.to_string().contains("end_date"), "{e}");
        let many = pb::GetUserActivityRequest {
            user_ids: vec![1; MAX_BATCH + 1],
            ..Default::default()
        };
        assert!(activity_filter(&many).is_err());
    }
}
