//! Live product verification (`[tenants.tooling] verify_url`, SPEC §16) as
//! core's `Verifier`: a signed `POST` of `{type: "products.verify", ids}` on
//! the tenant's pooled webhook client (the same signing, guard, size cap
//! and refusal of redirects as tool calls), whose answer `{items: [{id,
//! price, currency, availability, …}]}` gives each product's live fields.
//! Like a tool call it carries the turn's `traceparent`.

use crate::client::{WebhookClient, WebhookRequest};
use crate::signature::SigningKeys;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::tools::Verifier;

pub struct WebhookVerifier {
    client: Arc<WebhookClient>,
    url: String,
    keys: SigningKeys,
    timeout: Duration,
}

impl WebhookVerifier {
    pub fn new(client: Arc<WebhookClient>, url: String, keys: SigningKeys, timeout: Duration) -> Self {
        Self { client, url, keys, timeout }
    }
}

#[async_trait::async_trait]
impl Verifier for WebhookVerifier {
    async fn verify(&self, tenant_id: &str, ids: Vec<String>, trace_id: &str) -> Result<Vec<Value>, String> {
        let body = json!({"type": "products.verify", "ids": ids});
        let request = WebhookRequest {
            url: &self.url,
            keys: &self.keys,
            id: None,
            body: body.to_string().into(),
            timeout: self.timeout,
            trace_id,
        };
        let answer = self.client.call(tenant_id, request).await.map_err(|e| e.to_string())?;
        live_items(answer)
    }
}

/// The `items` of an answer: objects with a string `id` (others are left out).
fn live_items(mut answer: Value) -> Result<Vec<Value>, String> {
    let Some(Value::Array(items)) = answer.get_mut("items").map(Value::take) else {
        return Err("the answer has no `items` list".into());
    };
    Ok(items.into_iter().filter(|item| item["id"].is_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_objects_with_an_id() {
        let answer = json!({"items": [{"id": "p1", "price": "9.00"}, {"price": "1.00"}, "p2", {"id": 3}]});
        assert_eq!(live_items(answer).unwrap(), [json!({"id": "p1", "price": "9.00"})]);
        assert!(live_items(json!({"products": []})).is_err());
        assert!(live_items(json!({"items": {"id": "p1"}})).is_err());
    }
}
