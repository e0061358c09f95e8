//! The demo model and a user's memory (SPEC §18): when `remember` and
//! `forget` are offered (a signed-in user of a tenant with `memory = true`),
//! "remember I like denim and size M" becomes `remember` calls, "forget my
//! colour preference" a `forget` call, and "what do you remember about me"
//! is answered from the memory the system prompt carries. Once a round has
//! run it says what was kept or forgotten.

use super::shop::Reply;
use serde_json::json;
use switchboard_core::model::Role;
use switchboard_core::provider::ChatRequest;
use switchboard_core::tools::{ToolCall, ToolChoice, ToolRound, FORGET, REMEMBER};
use switchboard_core::turn::{MEMORY_EMPTY, MEMORY_HEADING};

/// `None` when the request is not about memory (or memory is not offered).
pub fn reply(request: &ChatRequest) -> Option<Reply> {
    let tools = &request.tools;
    if !tools.offered.iter().any(|t| t.name == REMEMBER) {
        return None;
    }
    if let Some(last) = tools.rounds.last().filter(|r| r.calls.iter().all(|c| is_memory(&c.name))) {
        return Some(Reply::Text(about_round(last)));
    }
    if !tools.rounds.is_empty() {
        return None;
    }
    let message =
        request.history.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
    let lower = message.to_lowercase();
    if ["what do you remember", "what do you know about me"].iter().any(|q| lower.contains(q)) {
        return Some(Reply::Text(recall(request.system_prompt.as_deref().unwrap_or_default())));
    }
    if tools.choice != ToolChoice::Auto {
        return None;
    }
    if let Some(rest) = after_word(message, "forget") {
        let keys: Vec<String> = if is_everything(rest) {
            remembered(request.system_prompt.as_deref().unwrap_or_default())
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        } else {
            vec![key_of(rest)].into_iter().flatten().collect()
        };
        let calls = keys.into_iter().map(|key| call(FORGET, json!({"key": key}))).collect();
        return Some(calls_or_ask(calls));
    }
    let rest = after_word(message, "remember")?;
    let calls =
        facts(rest).into_iter().map(|(key, value)| call(REMEMBER, json!({"key": key, "value": value})));
    Some(calls_or_ask(calls.collect()))
}

fn is_memory(name: &str) -> bool {
    name == REMEMBER || name == FORGET
}

fn calls_or_ask(calls: Vec<ToolCall>) -> Reply {
    if calls.is_empty() {
        Reply::Text(
            "What should I remember or forget? For example: \"remember I like denim and size M\", \
            or \"forget my size\"."
                .into(),
        )
    } else {
        Reply::Calls(calls)
    }
}

fn call(name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: format!("call_demo_{}", uuid::Uuid::new_v4().simple()),
        name: name.to_owned(),
        arguments: arguments.to_string(),
    }
}

/// The text after `word` (matched case-insensitively, as a whole word).
fn after_word<'a>(message: &'a str, word: &str) -> Option<&'a str> {
    let lower = message.to_ascii_lowercase();
    let at = lower.match_indices(word).find(|(i, _)| {
        let before = lower[..*i].chars().next_back();
        let after = lower[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })?;
    Some(message[at.0 + word.len()..].trim_start_matches([' ', ':', ',']).trim_start_matches("that "))
}

/// "I like denim and size M" → likes = denim, size = M.
fn facts(text: &str) -> Vec<(String, String)> {
    let text = text.trim().trim_end_matches(['.', '!', '?']);
    text.split(" and ").flat_map(|part| part.split(", ")).filter_map(fact).collect()
}

fn fact(part: &str) -> Option<(String, String)> {
    let part = part.trim();
    // ASCII only: byte offsets in `lower` stay offsets in `part`.
    let lower = part.to_ascii_lowercase();
    let value_after =
        |prefix: &str| lower.starts_with(prefix).then(|| part[prefix.len()..].trim().to_owned());
    let pairs: [(&str, &str); 8] = [
        ("i like ", "likes"),
        ("i love ", "likes"),
        ("i prefer ", "prefers"),
        ("i wear size ", "size"),
        ("i'm a size ", "size"),
        ("my size is ", "size"),
        ("size ", "size"),
        ("i don't like ", "dislikes"),
    ];
    let found = pairs.iter().find_map(|(prefix, key)| value_after(prefix).map(|v| ((*key).to_owned(), v)));
    let found = found.or_else(|| {
        // "my favourite colour is blue" → favourite_colour = blue
        let rest = lower.strip_prefix("my ")?;
        let (name, _) = rest.split_once(" is ")?;
        let value = part[3 + name.len() + 4..].trim().to_owned();
        Some((name.replace(' ', "_"), value))
    });
    let (key, value) = found?;
    let key: String = key.chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).collect();
    (!key.is_empty() && !value.is_empty()).then_some((key, value))
}

fn is_everything(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["everything", "all about me", "all of it"].iter().any(|w| lower.contains(w))
}

/// "my colour preference" → colour.
fn key_of(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| {
            !w.is_empty()
                && ![
                    "my",
                    "the",
                    "that",
                    "about",
                    "what",
                    "you",
                    "know",
                    "preference",
                    "preferences",
                    "please",
                ]
                .contains(w)
        })
        .collect();
    let key = match words.as_slice() {
        ["i", "like", ..] | ["likes", ..] | ["like", ..] => "likes".to_owned(),
        [first, ..] => (*first).to_owned(),
        [] => return None,
    };
    Some(key)
}

/// The memory the system prompt carries: `- key: value` lines after the heading.
fn remembered(system_prompt: &str) -> Vec<(String, String)> {
    let Some((_, after)) = system_prompt.split_once(MEMORY_HEADING) else { return Vec::new() };
    after
        .trim_start()
        .lines()
        .map_while(|line| line.strip_prefix("- "))
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn recall(system_prompt: &str) -> String {
    let items = remembered(system_prompt);
    if items.is_empty() || system_prompt.contains(MEMORY_EMPTY) {
        return "I don't remember anything about you yet. Tell me, for example, \"remember I like denim and size M\"."
            .into();
    }
    let lines: Vec<String> = items.iter().map(|(k, v)| format!("- {k}: {v}")).collect();
    format!(
        "Here is what I remember about you:\n{}\n\nSay \"forget my …\" to remove something.",
        lines.join("\n")
    )
}

/// What the last round kept or forgot, and what failed.
fn about_round(round: &ToolRound) -> String {
    let mut out = Vec::new();
    for (call, result) in round.calls.iter().zip(&round.results) {
        let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
        let key = args["key"].as_str().unwrap_or("?");
        out.push(match (call.name.as_str(), result.is_error) {
            (_, true) => format!("I couldn't change \"{key}\": {}.", result.content),
            (REMEMBER, false) => format!("I'll remember {key}: {}.", args["value"].as_str().unwrap_or("")),
            _ => format!("I've forgotten {key}."),
        });
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_are_read_from_plain_words() {
        assert_eq!(
            facts("I like denim and size M"),
            [("likes".to_owned(), "denim".to_owned()), ("size".to_owned(), "M".to_owned())]
        );
        assert_eq!(
            facts("my favourite colour is Navy blue."),
            [("favourite_colour".to_owned(), "Navy blue".to_owned())]
        );
        assert!(facts("nothing useful").is_empty());
        assert!(facts("my ȺȺ is xé").is_empty(), "no ASCII key, and no panic on the non-ASCII name");
        assert_eq!(after_word("Please remember that I like denim", "remember"), Some("I like denim"));
        assert_eq!(after_word("what do you remember about me", "forget"), None);
        assert_eq!(key_of("my colour preference"), Some("colour".to_owned()));
        assert_eq!(key_of("my size"), Some("size".to_owned()));
        assert_eq!(
            key_of("that I like denim"),
            Some("likes".to_owned()).filter(|_| true).or(None).map(|_| "likes".to_owned())
        );
    }

    #[test]
    fn the_memory_is_read_back_from_the_system_prompt() {
        let prompt = format!("You are helpful.\n\n{MEMORY_HEADING}\n- likes: denim\n- size: M");
        assert_eq!(
            remembered(&prompt),
            [("likes".to_owned(), "denim".to_owned()), ("size".to_owned(), "M".to_owned())]
        );
        assert!(recall(&prompt).contains("- size: M"));
        assert!(recall(MEMORY_EMPTY).starts_with("I don't remember anything"));
    }
}
