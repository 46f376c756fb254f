//! The Python exception hierarchy and the one mapping from Rust errors to it.
//!
//! Every error a user can cause surfaces as a subclass of `orch.OrchError` carrying the server's
//! `message`, `code` (HTTP status), `reason` (`Status.reason`) and `causes` (one dict per
//! `Status.details.causes[]` entry: `field`, `reason`, `message`). The mapping follows
//! apimachinery's `k8s.io/apimachinery/pkg/api/errors` predicates (`IsNotFound`,
//! `IsAlreadyExists`, `IsConflict`, `IsInvalid`, `IsResourceExpired`/`IsGone`, `IsTimeout`).

use orch_types::client::ClientError;
use orch_types::ApiError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(
    orch,
    OrchError,
    PyException,
    "Base class of every error raised by orch."
);
create_exception!(
    orch,
    NotFoundError,
    OrchError,
    "The object does not exist (404 NotFound)."
);
create_exception!(
    orch,
    AlreadyExistsError,
    OrchError,
    "An object with that name already exists (409 AlreadyExists)."
);
create_exception!(
    orch,
    ConflictError,
    OrchError,
    "The write lost an optimistic-concurrency race or a precondition failed (409 Conflict)."
);
create_exception!(
    orch,
    InvalidError,
    OrchError,
    "The object failed validation (422 Invalid); `causes` lists the field errors."
);
create_exception!(
    orch,
    ExpiredError,
    OrchError,
    "The requested resourceVersion is too old (410 Gone / Expired)."
);
create_exception!(
    orch,
    TimeoutError,
    OrchError,
    "A wait or a server-side operation timed out."
);

/// Every error the native module can return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client call failed (server `Status`, transport, decoding).
    #[error(transparent)]
    Client(Box<ClientError>),
    /// The server (or an in-process core) answered with a `Status`.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// A wait ran past its deadline.
    #[error("{0}")]
    Timeout(String),
    /// Input the caller gave could not be used (bad YAML, unknown kind, bad scenario…).
    #[error("{0}")]
    Input(String),
    /// An error already raised on the Python side (e.g. `KeyboardInterrupt`).
    #[error("{0}")]
    Py(#[from] PyErr),
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(a) => Self::Api(Box::new(a)),
            other => Self::Client(Box::new(other)),
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Self::Api(Box::new(e))
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn api_error_to_py(py: Python<'_>, e: &ApiError) -> PyErr {
    let msg = e.message.clone();
    let err = match (e.code, e.reason.as_str()) {
        (404, _) => NotFoundError::new_err(msg),
        (409, orch_types::status::reason::ALREADY_EXISTS) => AlreadyExistsError::new_err(msg),
        (409, _) => ConflictError::new_err(msg),
        (422, _) => InvalidError::new_err(msg),
        (410, _) => ExpiredError::new_err(msg),
        (504, _) | (_, orch_types::status::reason::TIMEOUT) => TimeoutError::new_err(msg),
        _ => OrchError::new_err(msg),
    };
    let causes = PyList::empty(py);
    for c in e
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
    {
        let d = PyDict::new(py);
        // Setting items on a fresh dict cannot fail for str keys; ignore the impossible error.
        let _ = d.set_item("field", c.field.as_deref());
        let _ = d.set_item("reason", c.reason.as_deref());
        let _ = d.set_item("message", c.message.as_deref());
        let _ = causes.append(d);
    }
    set_attrs(py, &err, e.code, &e.reason, &causes);
    err
}

fn set_attrs(py: Python<'_>, err: &PyErr, code: u16, reason: &str, causes: &Bound<'_, PyList>) {
    let v = err.value(py);
    // Attribute assignment on a fresh exception instance only fails on out-of-memory.
    let _ = v.setattr("code", code);
    let _ = v.setattr("reason", reason);
    let _ = v.setattr("causes", causes);
}

fn plain(py: Python<'_>, err: PyErr, code: u16, reason: &str) -> PyErr {
    set_attrs(py, &err, code, reason, &PyList::empty(py));
    err
}

impl From<Error> for PyErr {
    fn from(e: Error) -> Self {
        Python::attach(|py| match e {
            Error::Api(a) => api_error_to_py(py, &a),
            Error::Client(other) => plain(
                py,
                OrchError::new_err(other.to_string()),
                500,
                "InternalError",
            ),
            Error::Timeout(m) => plain(py, TimeoutError::new_err(m), 504, "Timeout"),
            Error::Input(m) => plain(py, OrchError::new_err(m), 400, "BadRequest"),
            Error::Py(p) => p,
        })
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("OrchError", py.get_type::<OrchError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("AlreadyExistsError", py.get_type::<AlreadyExistsError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("InvalidError", py.get_type::<InvalidError>())?;
    m.add("ExpiredError", py.get_type::<ExpiredError>())?;
    m.add("TimeoutError", py.get_type::<TimeoutError>())?;
    Ok(())
}
