//! What the API answers: the envelope ([`envelope`]), the errors and the
//! one mapping of an error kind to its status, Zuora code and body
//! ([`error`]), and the Data Query routes' own error shape
//! ([`data_query`]).

pub mod data_query;
pub mod envelope;
pub mod error;
