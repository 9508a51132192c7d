//! PostgreSQL's particulars that every writer meets: the text it refuses
//! ([`pg_text`]) and what its errors mean ([`is_transient`],
//! [`database_detail`]), so a batch and a reprocess tell a submission's
//! fault from the database's in the same way.

/// Text as PostgreSQL stores it: a NUL character (which a text column
/// refuses, failing the whole batch) becomes U+FFFD. For the bookkeeping
/// columns only (names, reasons); form values with a NUL fail their
/// submission instead (see `convert`).
pub fn pg_text(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

pub fn pg_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(pg_text)
}

/// A database error that says nothing about the data: retrying the batch
/// may succeed, so it must not become an `error_audit` row.
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind as Kind;
    match e {
        diesel::result::Error::DatabaseError(kind, info) => match kind {
            Kind::SerializationFailure
            | Kind::UnableToSendCommand
            | Kind::ClosedConnection
            | Kind::ReadOnlyTransaction => true,
            _ => {
                let m = info.message();
                m.contains("deadlock detected")
                    || m.contains("canceling statement")
                    || m.contains("terminating connection")
                    || m.contains("could not obtain lock")
            }
        },
        diesel::result::Error::BrokenTransactionManager
        | diesel::result::Error::AlreadyInTransaction
        | diesel::result::Error::NotInTransaction
        | diesel::result::Error::RollbackErrorOnCommit { .. }
        | diesel::result::Error::RollbackTransaction => true,
        _ => false,
    }
}

/// The database's words for a failed write, with its detail and hint.
pub fn database_detail(e: &diesel::result::Error) -> String {
    match e {
        diesel::result::Error::DatabaseError(_, info) => {
            let mut text = info.message().to_string();
            if let Some(d) = info.details() {
                text.push_str("; ");
                text.push_str(d);
            }
            if let Some(h) = info.hint() {
                text.push_str("; hint: ");
                text.push_str(h);
            }
            if let Some(c) = info.column_name() {
                text.push_str("; column: ");
                text.push_str(c);
            }
            text
        }
        other => other.to_string(),
    }
}
