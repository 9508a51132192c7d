//! What the repository is given to write: a decoded [`Submission`] (its
//! envelope, form fields and sub-forms) or, for one that cannot be migrated,
//! a [`Failure`] with what `error_audit` records. [`crate::poll::submission`]
//! fills them from the upstream's JSON; they live here so the repository
//! needs nothing from the polling side.

/// A submission that could not be migrated, with what `error_audit` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub instance_id: Option<String>,
    pub form_name: Option<String>,
    pub server_version: Option<i64>,
    /// For people: "Unknown form name: anc_visit_v2".
    pub reason: String,
    /// The full cause, never cut.
    pub detail: String,
}

impl Failure {
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            instance_id: None,
            form_name: None,
            server_version: None,
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    /// The same failure, tagged with what is known of its submission.
    pub fn of(mut self, submission: &Submission) -> Self {
        self.instance_id = Some(submission.instance_id.clone());
        self.form_name = Some(submission.form_name.clone());
        self.server_version = Some(submission.server_version);
        self
    }
}

/// One decoded submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub anm_id: Option<String>,
    pub instance_id: String,
    pub entity_id: Option<String>,
    pub form_name: String,
    pub client_version: Option<i64>,
    pub server_version: i64,
    pub form_data_definition_version: Option<String>,
    pub form: Form,
}

/// The decoded `formInstance`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Form {
    /// `eligible_couple`, `mother`, ...: the field `id` goes to `<bind_type>_id`.
    pub bind_type: Option<String>,
    /// Field name -> value, one entry per name (the last occurrence with a
    /// value wins), in order of first appearance. `None` is "no answer".
    pub fields: Vec<(String, Option<String>)>,
    pub sub_forms: Vec<SubForm>,
}

/// A repeated group of a form (`child_pnc_visit`): one row per instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubForm {
    pub name: String,
    pub bind_type: Option<String>,
    /// One flat map per repeated entry, with quirks already applied.
    pub instances: Vec<Vec<(String, Option<String>)>>,
}

/// A field a written submission carried that its table has no column for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Empty for a field of the form itself.
    pub sub_form_name: String,
    pub field: String,
    /// Where it would go.
    pub table: String,
    pub column: String,
}
