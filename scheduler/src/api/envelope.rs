//! The response envelope every API call answers with (SPEC §3):
//! `{"success", "data", "previousPage", "nextPage"}`, plus `reasons` on errors.

use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One reason a call failed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Reason {
    /// e.g. `INVALID_PARAMETER`, `NOT_FOUND`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Names the field and says what is wrong with it.
    pub message: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub success: bool,
    /// `()` serializes as `null`, which is what errors carry.
    pub data: T,
    /// Page number of the previous page of a list, else null.
    pub previous_page: Option<u32>,
    /// Page number of the next page of a list, else null.
    pub next_page: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub reasons: Vec<Reason>,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Self::page(data, None, None)
    }

    /// A page of a list, with the numbers of its neighbours (if any).
    pub fn page(data: T, previous_page: Option<u32>, next_page: Option<u32>) -> Self {
        Self {
            success: true,
            data,
            previous_page,
            next_page,
            reasons: Vec::new(),
        }
    }
}

impl Envelope<()> {
    pub fn error(code: &'static str, message: String) -> Self {
        Self {
            success: false,
            data: (),
            previous_page: None,
            next_page: None,
            reasons: vec![Reason { code, message }],
        }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}
