//! Every error response of the description: the SPEC §8 envelope, on each
//! status an operation can answer with, listing the codes of that status
//! from the one code→status table (`ErrorCode::http_status`). Operations
//! name their own particular errors (409 of a chat, 410 of a resume); the
//! refusals any `/v1` request can meet (malformed or oversized requests,
//! credentials, tenant, origin, rate limits, internal) are added here, so the
//! description cannot forget them.

use super::events::add_schema;
use crate::http::error::ErrorEnvelope;
use std::collections::BTreeMap;
use switchboard_core::ErrorCode;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::Modify;

/// What any `/v1` request may be refused with, before its handler decides.
const COMMON: [u16; 11] = [400, 401, 403, 404, 408, 413, 414, 415, 429, 431, 500];

pub struct Envelopes;

impl Modify for Envelopes {
    fn modify(&self, api: &mut OpenApi) {
        add_schema::<ErrorEnvelope>(api);
        for (path, item) in api.paths.paths.iter_mut() {
            let common = path.starts_with("/v1/") && path != "/v1/widget/bootstrap";
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                complete(operation, common);
            }
        }
    }
}

/// Gives every 4xx/5xx the operation lists, and the common ones, the
/// envelope and the codes of their status.
fn complete(operation: &mut Operation, common: bool) {
    let responses = &mut operation.responses.responses;
    let mut statuses: Vec<u16> =
        responses.keys().filter_map(|s| s.parse().ok()).filter(|s| *s >= 400).collect();
    if common {
        statuses.extend(COMMON);
    }
    for status in statuses {
        // An error status with a body of its own (readiness) keeps it.
        if let Some(RefOr::T(r)) = responses.get(&status.to_string()) {
            if !r.content.is_empty() {
                continue;
            }
        }
        let codes = codes_by_status().get(&status).cloned().unwrap_or_default();
        let listed = codes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
        let said = match responses.get(&status.to_string()) {
            Some(RefOr::T(r)) if !r.description.is_empty() => format!("{} ", r.description),
            _ => String::new(),
        };
        let response = ResponseBuilder::new()
            .description(format!("{said}Error envelope; `error.code` is one of {listed}"))
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build(),
            )
            .build();
        responses.insert(status.to_string(), response.into());
    }
}

/// The contract's codes by HTTP status.
fn codes_by_status() -> BTreeMap<u16, Vec<&'static str>> {
    let mut map: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for code in ErrorCode::all() {
        map.entry(code.http_status()).or_default().push(code.as_str());
    }
    map
}
