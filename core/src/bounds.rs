//! Size caps and the text rule for everything that enters the log from outside: every string and every list
//! of an event (its payload, the hardware facts inside it, its comment) has a cap, and text is printable — no
//! control characters, so nothing an agent or an installer writes can move an operator's cursor, ring their
//! terminal's bell or hide the rest of a line when `sendan` prints it.
//!
//! The caps are checked at decode, where a request is turned into events (`wire::decode_submission`, the
//! phone-home body), with the path of the offending field in the error; the JSON schema of the hardware facts
//! (`core/schema/hardware-facts.schema.json`) states the same caps. [`clean_text`] is what an agent uses on
//! text it did not write itself (a command's stderr) before it reports it.

use serde_json::Value;

/// Free text: reasons, failures, details.
pub const MAX_TEXT: usize = 4096;
/// An operator's comment on an event.
pub const MAX_COMMENT: usize = 2048;
/// A system: a store path or a flake reference.
pub const MAX_SYSTEM: usize = 1024;
/// A ClusterSpec document (the request body limit caps it too).
pub const MAX_DOCUMENT: usize = 16 << 20;
/// An OpenSSH public key line.
pub const MAX_SSH_KEY: usize = 16 * 1024;
/// Any list in an event (reasons, a wave's nodes, …).
pub const MAX_LIST: usize = 10_000;
/// A string in the hardware facts (a model, a serial, a NIC's name, …).
pub const FACT_TEXT: usize = 256;
/// A `/dev/disk/by-id/…` path in the hardware facts.
pub const FACT_PATH: usize = 512;
/// Disks, NICs and CPU virtualization flags one machine may report.
pub const MAX_DISKS: usize = 256;
pub const MAX_NICS: usize = 128;
pub const MAX_CPU_FLAGS: usize = 16;

/// A field over its cap, or text that is not printable. `field` is its path, such as `facts.disks[2].model`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {why}")]
pub struct BoundsError {
    pub field: String,
    pub why: String,
}

/// Whether `c` may not appear in text from the log: a control character (C0, DEL, C1), or an invisible format
/// character that changes how the text around it reads — bidirectional overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069, U+200E, U+200F, U+061C), zero-width characters (U+200B–U+200D, U+2060, U+FEFF) — the
/// "Trojan Source" characters (CVE-2021-42574).
pub fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}')
}

/// `s` must be at most `max` bytes of printable text.
pub fn text(field: &str, s: &str, max: usize) -> Result<(), BoundsError> {
    if s.len() > max {
        return Err(BoundsError {
            field: field.to_owned(),
            why: format!("is {} bytes long; at most {max} are allowed", s.len()),
        });
    }
    if let Some((at, c)) = s.char_indices().find(|(_, c)| unprintable(*c)) {
        return Err(BoundsError {
            field: field.to_owned(),
            why: format!(
                "contains the unprintable character U+{:04X} at byte {at}; text must be printable (no escape \
                 sequences, line breaks, tabs, NULs or invisible direction and width marks)",
                c as u32
            ),
        });
    }
    Ok(())
}

/// The cap of a string field, by its name and whether it is inside the hardware facts.
fn string_cap(key: &str, in_facts: bool) -> usize {
    match key {
        "document" => MAX_DOCUMENT,
        "ssh_host_key" => MAX_SSH_KEY,
        "comment" => MAX_COMMENT,
        "by_id" if in_facts => FACT_PATH,
        _ if in_facts => FACT_TEXT,
        "system" | "path" | "to" | "previous" | "current" | "booted" | "profile" => MAX_SYSTEM,
        _ => MAX_TEXT,
    }
}

fn list_cap(key: &str, in_facts: bool) -> usize {
    match key {
        "disks" if in_facts => MAX_DISKS,
        "nics" if in_facts => MAX_NICS,
        "virtualization" if in_facts => MAX_CPU_FLAGS,
        _ => MAX_LIST,
    }
}

/// State the caps in a JSON Schema of event fields (a payload's or an envelope's), as [`check_event_json`]
/// enforces them: every string property gets `maxLength` and every array `maxItems`, by the property's name,
/// unless the schema already says. Referenced types (ids, hashes, the facts) state their own.
pub fn annotate_caps(schema: &mut Value) {
    fn is(schema: &Value, ty: &str) -> bool {
        match schema.get("type") {
            Some(Value::String(t)) => t == ty,
            Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
            _ => false,
        }
    }
    fn property(key: &str, schema: &mut Value) {
        let Some(obj) = schema.as_object_mut() else { return };
        if is(&Value::Object(obj.clone()), "string") && !obj.contains_key("maxLength") {
            obj.insert("maxLength".into(), string_cap(key, false).into());
        }
        if is(&Value::Object(obj.clone()), "array") {
            if !obj.contains_key("maxItems") {
                obj.insert("maxItems".into(), list_cap(key, false).into());
            }
            if let Some(items) = obj.get_mut("items") {
                property(key, items);
            }
        }
        for k in ["anyOf", "oneOf", "allOf"] {
            for s in obj.get_mut(k).and_then(Value::as_array_mut).into_iter().flatten() {
                property(key, s);
            }
        }
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            for (k, v) in props.iter_mut() {
                property(k, v);
            }
        }
    }
    if let Some(variants) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        for v in variants {
            annotate_caps(v);
        }
    }
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, v) in props.iter_mut() {
            property(k, v);
        }
    }
}

/// Check every string and list of an event's JSON (its payload fields, and `comment`) against its cap and the
/// text rule. The first problem found is returned, with its path.
pub fn check_event_json(event: &Value) -> Result<(), BoundsError> {
    walk(event, &mut String::new(), "", false)
}

/// Check a machine's hardware facts as the phone-home body carries them (the `facts` object).
pub fn check_facts_json(facts: &Value) -> Result<(), BoundsError> {
    walk(facts, &mut "facts".to_owned(), "facts", true)
}

fn walk(v: &Value, path: &mut String, key: &str, in_facts: bool) -> Result<(), BoundsError> {
    match v {
        Value::String(s) => text(path, s, string_cap(key, in_facts)),
        Value::Array(items) => {
            let cap = list_cap(key, in_facts);
            if items.len() > cap {
                return Err(BoundsError {
                    field: path.clone(),
                    why: format!("has {} entries; at most {cap} are allowed", items.len()),
                });
            }
            let len = path.len();
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(item, path, key, in_facts)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            let len = path.len();
            for (k, item) in map {
                // Keys are field names of Sendan's own types (unknown ones are refused when decoding), or names
                // chosen by the declaration; they are text like any other.
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                text(path, k, FACT_TEXT)?;
                walk(item, path, k, in_facts || k == "facts")?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// `s` made reportable: every control character (line breaks, tabs, escape sequences) becomes a space, and it is
/// cut to at most `max` bytes (at a character boundary, ending in `…` when cut). For text an agent did not write
/// itself, such as a command's output, before it goes into an event.
pub fn clean_text(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().map(|c| if unprintable(c) { ' ' } else { c }).collect();
    if cleaned.len() <= max {
        return cleaned;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &cleaned[..end])
}

/// Make every string of an event's JSON reportable with [`clean_text`] at its field's cap (lists are left as they
/// are). What an agent does to an event before it submits it, since its reasons quote commands' output.
pub fn clean_event_json(event: &mut Value) {
    fn clean(v: &mut Value, key: &str, in_facts: bool) {
        match v {
            Value::String(s) if s.len() > string_cap(key, in_facts) || s.chars().any(unprintable) => {
                *s = clean_text(s, string_cap(key, in_facts));
            }
            Value::Array(items) => items.iter_mut().for_each(|i| clean(i, key, in_facts)),
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let facts = in_facts || k == "facts";
                    clean(item, k, facts);
                }
            }
            _ => {}
        }
    }
    clean(event, "", false);
}

/// `s` as a terminal shows it safely: control characters other than line breaks and tabs are written as
/// `\u{…}` escapes, so text from the log cannot drive the terminal. What the CLI prints goes through this.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| unprintable(c) && c != '\n' && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unprintable(c) && c != '\n' && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn control_characters_are_refused_with_the_field_named() {
        let marks = ["rtl\u{202e}txt", "iso\u{2066}late", "zero\u{200b}width", "bom\u{feff}", "lrm\u{200e}"];
        for bad in
            ["\u{1b}[2J", "bell\u{7}", "nul\u{0}", "line\nbreak", "tab\t", "c1\u{9b}31m"].into_iter().chain(marks)
        {
            let e = check_event_json(&json!({"type": "NodeFailed", "node": "n1", "reason": bad})).unwrap_err();
            assert_eq!(e.field, "reason", "{bad:?}");
            assert!(e.why.contains("unprintable character"), "{e}");
            assert!(!terminal_safe(bad).chars().any(|c| unprintable(c) && c != '\n' && c != '\t'), "{bad:?}");
        }
        let e = check_event_json(&json!({"type": "NodeFailed", "node": "n1", "reason": "ok", "comment": "a\u{1b}b"}))
            .unwrap_err();
        assert_eq!(e.to_string().split(' ').next(), Some("`comment`"));
        assert!(check_event_json(&json!({"type": "NodeFailed", "node": "n1", "reason": "disk sda: 3 ✗ ok"})).is_ok());
    }

    #[test]
    fn every_string_and_list_has_a_cap() {
        let long = "x".repeat(FACT_TEXT + 1);
        let e = check_facts_json(&json!({"cpu": {"model": long}})).unwrap_err();
        assert_eq!(e.field, "facts.cpu.model");
        let nics: Vec<Value> = (0..=MAX_NICS).map(|_| json!({"mac": "52:54:00:00:00:01"})).collect();
        let e = check_event_json(&json!({"type": "MachineDiscovered", "machine": "m", "facts": {"nics": nics}}))
            .unwrap_err();
        assert_eq!(e.field, "facts.nics");
        assert!(e.why.contains("at most 128"), "{e}");
        let e = check_event_json(&json!({"type": "NodeFailed", "node": "n1", "reason": "r".repeat(MAX_TEXT + 1)}))
            .unwrap_err();
        assert_eq!(e.field, "reason");
        let by_id = format!("/dev/disk/by-id/{}", "v".repeat(300));
        assert!(check_facts_json(&json!({"disks": [{"by_id": by_id}]})).is_ok(), "by-id paths may be longer");
        let e = check_facts_json(&json!({"disks": [{"name": "sda"}, {"serial": "s\u{7}"}]})).unwrap_err();
        assert_eq!(e.field, "facts.disks[1].serial");
    }

    #[test]
    fn cleaned_events_pass_the_caps() {
        let mut e = json!({"type": "SystemPrefetchFailed", "node": "n1", "decision": 3,
            "system": "/nix/store/x", "error": format!("error:\n  {}\u{1b}[0m", "y".repeat(10_000))});
        assert!(check_event_json(&e).is_err());
        clean_event_json(&mut e);
        check_event_json(&e).unwrap();
        assert!(e["error"].as_str().unwrap().starts_with("error:   yyy"));
    }

    #[test]
    fn cleaning_and_escaping_make_text_safe() {
        assert_eq!(clean_text("a\nb\u{1b}[1mc", 100), "a b [1mc");
        let cut = clean_text(&"é".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
        assert_eq!(terminal_safe("fine\n\ttext"), "fine\n\ttext");
        assert_eq!(terminal_safe("evil\u{1b}]0;pwned\u{7}"), "evil\\u{1b}]0;pwned\\u{7}");
        assert_eq!(terminal_safe("nul\u{0}cr\r"), "nul\\u{0}cr\\u{d}");
    }
}

/// The JSON Schema (draft 2020-12) of the hardware facts a machine phones home with, stating every cap above
/// (`maxLength`, `maxItems`) and the MAC form. A copy is checked in at `core/schema/hardware-facts.schema.json`;
/// a test fails when it drifts from the types or the caps.
pub fn facts_json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(crate::facts::HardwareFacts)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod schema_tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn checked_in_facts_schema_matches_the_types_and_states_every_cap() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/hardware-facts.schema.json");
        let generated = serde_json::to_string_pretty(&facts_json_schema()).unwrap() + "\n";
        if std::env::var_os("SENDAN_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} does not match the facts types; regenerate it with `SENDAN_BLESS=1 cargo test -p sendan-core bounds` \
             and commit the result",
            path.display()
        );
        // Every string and every list in the schema has a cap, and the caps are the ones `check_facts_json` applies.
        fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
            if let Some(map) = v.as_object() {
                let types: Vec<&str> = match map.get("type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if types.contains(&"string") && !map.contains_key("maxLength") && !map.contains_key("pattern") {
                    out.push(format!("{path}: a string without maxLength"));
                }
                if types.contains(&"array") && !map.contains_key("maxItems") {
                    out.push(format!("{path}: a list without maxItems"));
                }
                for (k, item) in map {
                    walk(item, &format!("{path}/{k}"), out);
                }
            }
        }
        let schema = facts_json_schema();
        let mut uncapped = Vec::new();
        walk(&schema, "", &mut uncapped);
        assert!(uncapped.is_empty(), "uncapped fields: {uncapped:#?}");
        let text = schema.to_string();
        for cap in [FACT_TEXT, FACT_PATH, MAX_DISKS, MAX_NICS, MAX_CPU_FLAGS] {
            assert!(text.contains(&format!(":{cap}")), "the schema does not state the cap {cap}");
        }
    }
}
