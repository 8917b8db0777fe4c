//! The response envelope every API call answers with (SPEC §3):
//! `{"success", "data", "previousPage", "nextPage"}`; an error is
//! `{"success": false, "processId", "reasons"}` as Zuora answers them
//! (`api/error-codes.md`).

use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One reason a call failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reason {
    /// Zuora's 8-digit error code: the 6-digit resource code of the field
    /// at fault (500000 when none) and the 2-digit error category, e.g.
    /// 58101020 (queryFromTime, invalid value). docs/api.md lists them.
    #[schema(minimum = 50000000, maximum = 67999999)]
    pub code: u32,
    /// Names the field and says what is wrong with it.
    pub message: String,
}

/// The body of every error answer (but the Data Query routes').
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// The request's id (the `Zuora-Request-Id` header's first 16 hex
    /// digits, upper case), to quote when reporting the problem.
    pub process_id: String,
    /// Every problem found with the request.
    pub reasons: Vec<Reason>,
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
        }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}
