//! The one error type of the PostgreSQL layer: a message with its SQLSTATE (and detail and
//! hint when PostgreSQL gave them), kept from where it was caught to where it is raised to
//! the user or written into a step row.

use std::fmt;

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Error {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// A failure of our own code, not of the input (SQLSTATE XX000).
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
    }

    /// A lock wait gave up (`lock_timeout`, SQLSTATE 55P03) or was chosen to end a deadlock
    /// (40P01): the same work may succeed later.
    pub fn is_lock_conflict(&self) -> bool {
        matches!(
            self.code,
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
                | PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED
        )
    }

    /// Raises it as a PostgreSQL ERROR with its SQLSTATE, detail and hint.
    #[track_caller]
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "agent_loop");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR does not return")
    }
}

impl fmt::Display for Error {
    /// The message, with its detail and hint: the text a step row or an error column keeps.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl From<CaughtError> for Error {
    fn from(error: CaughtError) -> Error {
        match error {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => Error {
                code: report.sql_error_code(),
                message: report.message().to_owned(),
                detail: report.detail().map(str::to_owned),
                hint: report.hint().map(str::to_owned),
            },
            CaughtError::RustPanic { ereport, .. } => {
                Error::internal(format!("internal error: {}", ereport.message()))
            }
        }
    }
}

impl From<String> for Error {
    /// A message of our own code, which has no SQLSTATE of its own (XX000).
    fn from(message: String) -> Error {
        Error::internal(message)
    }
}

impl From<pgrx::spi::Error> for Error {
    /// SPI's own errors (a statement PostgreSQL itself rejects raises instead): a type that
    /// does not match, a column that is not there — ours, not the caller's.
    fn from(error: pgrx::spi::Error) -> Error {
        Error::internal(format!("SPI: {error}"))
    }
}

/// Raising a result's error as a PostgreSQL ERROR: what an SQL function does last.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<Error>> OrRaise<T> for std::result::Result<T, E> {
    #[track_caller]
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.into().raise())
    }
}
