//! A `tools/call` result as the model gets it (SPEC §16): `structuredContent`
//! when present, else the text of its content items, joined; `isError: true`
//! is an error result whose reason is that text. MCP results carry nothing
//! for the visitor to see, so there is no `display`.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;
use switchboard_core::tools::Outcome;

pub(super) fn outcome_of(result: CallToolResult) -> Outcome {
    let outcome = if result.is_error == Some(true) {
        let text = text_of(&result.content);
        let reason = match (text.is_empty(), result.structured_content) {
            (false, _) => text,
            (true, Some(structured)) => structured.to_string(),
            (true, None) => "the tool reported an error".to_owned(),
        };
        Err(reason)
    } else {
        Ok(result.structured_content.unwrap_or_else(|| Value::String(text_of(&result.content))))
    };
    Outcome { result: outcome, display: None }
}

/// The text items, one per line; images, audio and resources have no text
/// a model can read here.
fn text_of(content: &[ContentBlock]) -> String {
    let texts: Vec<&str> =
        content.iter().filter_map(ContentBlock::as_text).map(|t| t.text.as_str()).collect();
    texts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structured_content_is_preferred_over_text() {
        let mut result = CallToolResult::success(vec![ContentBlock::text("{\"n\":1}")]);
        result.structured_content = Some(json!({"n": 1}));
        assert_eq!(outcome_of(result).result, Ok(json!({"n": 1})));
    }

    #[test]
    fn text_items_are_joined_and_others_left_out() {
        let result = CallToolResult::success(vec![
            ContentBlock::text("two pairs"),
            ContentBlock::image("aGk=", "image/png"),
            ContentBlock::text("in stock"),
        ]);
        assert_eq!(outcome_of(result), Outcome { result: Ok(json!("two pairs\nin stock")), display: None });
    }

    #[test]
    fn is_error_gives_the_text_as_the_reason() {
        let result = CallToolResult::error(vec![ContentBlock::text("order not found")]);
        assert_eq!(outcome_of(result).result, Err("order not found".to_owned()));
        let bare = CallToolResult::error(Vec::new());
        assert_eq!(outcome_of(bare).result, Err("the tool reported an error".to_owned()));
    }
}
