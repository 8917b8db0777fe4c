//! The edge: what every request passes through before (and after) its
//! route, outermost first — the request id ([`request_id`]), the bounds on
//! sizes, requests in flight and time ([`bounds`]), the request span and
//! `Zuora-Track-Id` ([`trace`], [`headers`]), the `Idempotency-Key` replay
//! of POSTs ([`idempotency`]) — plus the per-tenant create limits the
//! create routes call ([`limits`]) and the accept loop ([`server`]). The
//! token check is [`crate::api::auth`].

pub mod bounds;
pub mod headers;
pub mod idempotency;
pub mod limits;
pub mod request_id;
pub mod server;
pub mod trace;
