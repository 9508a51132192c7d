//! The metadata of a generated organisation: subject types, programs,
//! encounter types, concepts and forms, each known to tests by a stable key
//! (`"person"`, `"anc"`, `"weight"`) whatever its display name, so the same
//! test runs with ordinary and with hostile names.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256};

/// A deterministic uuid for `key` under `seed`: organisations generated
/// from one bundle seed (members of a group) share their metadata's uuids,
/// as organisations set up from one bundle do in Avni.
pub fn uuid_for(seed: u64, key: &str) -> String {
    let digest = Sha256::digest(format!("{seed}:{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[derive(Debug, Clone)]
pub struct SubjectTypeDef {
    pub key: &'static str,
    pub uuid: String,
    pub name: String,
    /// Person, Individual, Household or Group.
    pub kind: &'static str,
    pub allow_middle_name: bool,
}

#[derive(Debug, Clone)]
pub struct ProgramDef {
    pub key: &'static str,
    pub uuid: String,
    pub name: String,
    pub subject_type: &'static str,
    pub has_exit_form: bool,
}

#[derive(Debug, Clone)]
pub struct EncounterTypeDef {
    pub key: &'static str,
    pub uuid: String,
    pub name: String,
    pub subject_type: &'static str,
    /// The program for a program encounter; `None` for a general one.
    pub program: Option<&'static str>,
    pub has_cancel_form: bool,
}

#[derive(Debug, Clone)]
pub struct AnswerDef {
    pub uuid: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct ConceptDef {
    pub key: String,
    pub uuid: String,
    pub name: String,
    /// Avni's data type: Numeric, Text, Coded, QuestionGroup, ...
    pub data_type: &'static str,
    /// For coded concepts.
    pub multi_select: bool,
    pub answers: Vec<AnswerDef>,
    /// For question groups: the children's keys.
    pub children: Vec<String>,
    pub repeatable: bool,
}

/// An organisation's metadata.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub seed: u64,
    pub subject_types: Vec<SubjectTypeDef>,
    pub programs: Vec<ProgramDef>,
    pub encounter_types: Vec<EncounterTypeDef>,
    /// Every concept a form asks, in form order (groups before their
    /// children); answer concepts are inside their coded concept.
    pub concepts: Vec<ConceptDef>,
    /// Address level types, highest first.
    pub address_level_types: Vec<String>,
}

impl Bundle {
    pub fn subject_type(&self, key: &str) -> &SubjectTypeDef {
        self.subject_types
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no subject type {key}"))
    }

    pub fn program(&self, key: &str) -> &ProgramDef {
        self.programs
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no program {key}"))
    }

    pub fn encounter_type(&self, key: &str) -> &EncounterTypeDef {
        self.encounter_types
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no encounter type {key}"))
    }

    pub fn concept(&self, key: &str) -> &ConceptDef {
        self.concepts
            .iter()
            .find(|c| c.key == key)
            .unwrap_or_else(|| panic!("no concept {key}"))
    }

    /// The uuid of answer `name` of coded concept `key`.
    pub fn answer(&self, key: &str, name: &str) -> String {
        self.concept(key)
            .answers
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.uuid.clone())
            .unwrap_or_else(|| panic!("concept {key} has no answer {name}"))
    }

    /// Concepts that are direct questions of a form (not group children).
    pub fn top_level_concepts(&self) -> impl Iterator<Item = &ConceptDef> {
        let children: Vec<&String> = self.concepts.iter().flat_map(|c| &c.children).collect();
        self.concepts
            .iter()
            .filter(move |c| !children.contains(&&c.key))
    }
}

/// The display names: ordinary, or hostile (quotes, semicolons, Hindi,
/// leading digits, 100+ characters, reserved words, names sharing their
/// first six or twenty characters, a name of punctuation only).
struct Names {
    hostile: bool,
}

impl Names {
    fn pick(&self, ordinary: &str, hostile: &str) -> String {
        if self.hostile {
            hostile.to_string()
        } else {
            ordinary.to_string()
        }
    }
}

const LONG_PROGRAM: &str = "Maternal health programme for high risk pregnancies in rural districts with extra follow up visits";
const LONG_CONCEPT_A: &str =
    "Photograph of the beneficiary taken at registration time by the field worker, front view";
const LONG_CONCEPT_B: &str =
    "Photograph of the beneficiary taken at registration time by the field worker, side view";

/// Builds an organisation's metadata. `extra_questions` adds that many
/// more questions of seeded random types to every form (for benchmarks).
pub fn bundle(seed: u64, hostile: bool, extra_questions: usize) -> Bundle {
    let n = Names { hostile };
    let st = |key: &'static str, name: String, kind: &'static str, middle: bool| SubjectTypeDef {
        key,
        uuid: uuid_for(seed, &format!("subject_type:{key}")),
        name,
        kind,
        allow_middle_name: middle,
    };
    let subject_types = vec![
        st(
            "person",
            n.pick("Person", "Person \"Quoted\"; DROP TABLE individual; --"),
            "Person",
            true,
        ),
        st(
            "individual",
            n.pick("Individual", "व्यक्ति"),
            "Individual",
            false,
        ),
        st(
            "household",
            n.pick("Household", "1st Household"),
            "Household",
            false,
        ),
        st("group", n.pick("Group", "select"), "Group", false),
    ];
    let child_subject = if hostile { "person" } else { "individual" };
    let program = |key: &'static str, name: String, subject: &'static str, exit: bool| ProgramDef {
        key,
        uuid: uuid_for(seed, &format!("program:{key}")),
        name,
        subject_type: subject,
        has_exit_form: exit,
    };
    let programs = vec![
        program(
            "pregnancy",
            n.pick("Pregnancy", LONG_PROGRAM),
            "person",
            true,
        ),
        // Hostile: a second program of the same subject type whose name
        // shares its first six characters with the first, so the reference
        // system's trim gives their encounter tables one name.
        program(
            "child",
            n.pick("Child", "Maternity child care"),
            child_subject,
            false,
        ),
    ];
    let et = |key: &'static str,
              name: String,
              subject: &'static str,
              program: Option<&'static str>,
              cancel: bool| EncounterTypeDef {
        key,
        uuid: uuid_for(seed, &format!("encounter_type:{key}")),
        name,
        subject_type: subject,
        program,
        has_cancel_form: cancel,
    };
    let encounter_types = vec![
        et(
            "anc",
            n.pick("ANC", "Antenatal care visit in the first trimester"),
            "person",
            Some("pregnancy"),
            true,
        ),
        et(
            "growth",
            n.pick(
                "Growth Monitoring",
                "Antenatal care visit in the second trimester",
            ),
            child_subject,
            Some("child"),
            false,
        ),
        et(
            "home_visit",
            n.pick("Home Visit", "Home visit; DELETE FROM users; --"),
            "household",
            None,
            true,
        ),
        et(
            "survey",
            n.pick("Survey", "गृह भ्रमण सर्वेक्षण"),
            "person",
            None,
            true,
        ),
        et(
            "group_meeting",
            n.pick("Group Meeting", "!!! ???"),
            "group",
            None,
            false,
        ),
    ];

    let answers = |key: &str, names: &[&str]| -> Vec<AnswerDef> {
        names
            .iter()
            .map(|a| AnswerDef {
                uuid: uuid_for(seed, &format!("answer:{key}:{a}")),
                name: a.to_string(),
            })
            .collect()
    };
    let concept = |key: &str, name: String, data_type: &'static str| ConceptDef {
        key: key.to_string(),
        uuid: uuid_for(seed, &format!("concept:{key}")),
        name,
        data_type,
        multi_select: false,
        answers: Vec::new(),
        children: Vec::new(),
        repeatable: false,
    };
    let mut concepts = vec![
        concept("weight", n.pick("Weight", "Weight \"kg\""), "Numeric"),
        concept("notes", n.pick("Notes", "id"), "Notes"),
        concept("comments", n.pick("Comments", "uuid"), "Text"),
        concept("visit_date", n.pick("Visit date", "1st visit date"), "Date"),
        concept("visit_time", n.pick("Visit time", "select"), "DateTime"),
        concept("wake_time", n.pick("Wake up time", "Wake; up"), "Time"),
        concept(
            "illness",
            n.pick("Duration of illness", "बीमारी की अवधि"),
            "Duration",
        ),
        concept("photo", n.pick("Photo", LONG_CONCEPT_A), "Image"),
        concept("photo_v2", n.pick("Photo v2", LONG_CONCEPT_B), "ImageV2"),
        concept("beneficiary_id", n.pick("Beneficiary id", "ID"), "Id"),
        concept("mother", n.pick("Mother", "Mother's name'"), "Subject"),
        concept(
            "home",
            n.pick("Home location", "Home \"location\""),
            "Location",
        ),
    ];
    let mut blood = concept("blood_group", n.pick("Blood group", "रक्त समूह"), "Coded");
    blood.answers = answers(
        "blood_group",
        &if hostile {
            vec!["O+'\"", "बी पॉज़िटिव", "AB; DROP"]
        } else {
            vec!["A+", "B+", "O+"]
        },
    );
    concepts.push(blood);
    let mut symptoms = concept(
        "symptoms",
        n.pick("Symptoms", "Symptoms'; DROP TABLE concept; --"),
        "Coded",
    );
    symptoms.multi_select = true;
    symptoms.answers = answers(
        "symptoms",
        &if hostile {
            vec!["बुखार", "Cough, dry", "\"Headache\"", "Rash;"]
        } else {
            vec!["Fever", "Cough", "Headache", "Rash"]
        },
    );
    concepts.push(symptoms);
    let mut vitals = concept(
        "vitals",
        n.pick("Vitals", "Vitals \"group\""),
        "QuestionGroup",
    );
    vitals.children = vec!["pulse".into(), "remark".into()];
    concepts.push(vitals);
    concepts.push(concept("pulse", n.pick("Pulse", "Pulse; rate"), "Numeric"));
    concepts.push(concept("remark", n.pick("Remark", "टिप्पणी"), "Text"));
    let mut children = concept(
        "children",
        n.pick("Children", "Children \"list\""),
        "QuestionGroup",
    );
    children.repeatable = true;
    children.children = vec!["child_name".into(), "child_age".into(), "child_sex".into()];
    concepts.push(children);
    concepts.push(concept(
        "child_name",
        n.pick("Child name", "1st name"),
        "Text",
    ));
    concepts.push(concept(
        "child_age",
        n.pick("Child age", "Age; years"),
        "Numeric",
    ));
    let mut child_sex = concept("child_sex", n.pick("Child sex", "लिंग"), "Coded");
    child_sex.answers = answers("child_sex", &["Boy", "Girl"]);
    concepts.push(child_sex);

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let kinds: [&'static str; 6] = ["Numeric", "Text", "Date", "Coded", "Notes", "DateTime"];
    for i in 0..extra_questions {
        let data_type = kinds[rng.random_range(0..kinds.len())];
        let key = format!("extra_{i}");
        let mut c = concept(&key, format!("Extra question {i}"), data_type);
        if data_type == "Coded" {
            c.multi_select = rng.random_bool(0.3);
            c.answers = answers(&key, &["Yes", "No", "Maybe"]);
        }
        concepts.push(c);
    }

    Bundle {
        seed,
        subject_types,
        programs,
        encounter_types,
        concepts,
        address_level_types: vec!["State".into(), "District".into(), "Village".into()],
    }
}
