//! How a database failure reads as a domain [`Error`]. It lives here, not in
//! `domain`, so that the domain knows nothing of sqlx (docs/ARCHITECTURE.md,
//! "Modules": `domain` uses nothing of herald, and only `store` speaks SQL).

use crate::domain::Error;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // The database did not answer or the pool has nothing to give: the request
            // may succeed later, so say "unavailable" (503), not "internal" (500).
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Error::unavailable(e),
            // PostgreSQL itself ended or refused the session (shutting down, an
            // administrator's termination, a database closed to connections, too
            // many connections): the database is not answering either.
            sqlx::Error::Database(ref db) if ends_session(db.as_ref()) => Error::unavailable(e),
            other => Error::internal(other),
        }
    }
}

/// Whether PostgreSQL reported the error with severity FATAL or PANIC, the
/// severities with which the server ends a session rather than fails a statement.
fn ends_session(db: &dyn sqlx::error::DatabaseError) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    db.try_downcast_ref::<PgDatabaseError>()
        .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Kind;

    #[test]
    fn a_database_that_does_not_answer_is_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(refused)] {
            let error = Error::from(e);
            assert_eq!(error.kind, Kind::Unavailable);
            assert!(error.is_transient());
        }
    }

    #[test]
    fn any_other_database_failure_is_internal_and_keeps_its_cause_for_the_log() {
        let error = Error::from(sqlx::Error::RowNotFound);

        assert_eq!(error.kind, Kind::Internal);
        assert!(error.cause().contains("no rows"), "{}", error.cause());
    }
}
