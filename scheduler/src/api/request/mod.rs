//! Reading requests: each route's query parameters as one struct read by
//! its `IntoParams` definition ([`query`]), path parameters ([`params`]),
//! times ([`time`]), paging ([`paging`]), the export filters three routes
//! share ([`filters`]), the entries' cursor ([`cursor`]) and JSON bodies
//! read into their typed request structs ([`body`]). Every reader names
//! the parameter or field at fault and collects every problem of a request.

pub mod body;
pub mod cursor;
pub mod filters;
pub mod paging;
pub mod params;
pub mod query;
pub mod time;
