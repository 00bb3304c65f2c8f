//! Tidy tests, rust-analyzer style: rules about the shape of the code, checked by reading the source with plain
//! `cargo test`.
//!
//! - No import cycle between aggregate folders (`nodes`, `machines`, `specs`, `systems`, `rollouts`, `services`): each reads
//!   the others only through `crate::read`, below them, and names another only to propose its events.
//! - `fleet::check` and `fleet::fold` are exhaustive matches over `Payload` with no wildcard arm.
//! - Nothing reachable from applying a committed entry panics: no `unwrap()`, `expect(`, `panic!`,
//!   `unreachable!`, `todo!` or `unimplemented!` in the core's code (tests aside), nor in the raft crate's apply
//!   path, except on a line that says why it cannot fail (`// infallible: …`).
//! - No two public types or functions in the core share a name with different meanings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const AGGREGATES: [&str; 6] = ["nodes", "machines", "specs", "systems", "rollouts", "services"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The source without `#[cfg(test)]` items and without comments (line comments are kept when they carry the
/// `infallible:` marker, which the panic rule reads).
fn code(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (brace, semi) = (after.find('{'), after.find(';'));
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l.contains("infallible:") && !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module of a file of `core/src`: `machines/rules.rs` → `machines`, `read.rs` → `read`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("src")).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The module path of a file of `core/src`: `machines/rules.rs` → `[machines, rules]`, `machines/mod.rs` →
/// `[machines]`, `lib.rs` → `[]`.
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(root().join("src")).unwrap();
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// Every path a file names from the crate's root, as segments: `crate::a::b`, each leaf of a grouped
/// `crate::{a, b::{c, d}}`, and `super::…` / `self::…` paths resolved against the file's module.
fn crate_paths(file: &Path, text: &str) -> Vec<Vec<String>> {
    fn ident(s: &str) -> String {
        s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
    }
    /// The leaves of the path tree starting at `s` (just after `prefix::`), each appended to `prefix`.
    fn leaves(prefix: Vec<String>, s: &str, out: &mut Vec<Vec<String>>) {
        let s = s.trim_start();
        if let Some(group) = s.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        leaves(prefix.clone(), &group[start..i], out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        leaves(prefix.clone(), &group[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let name = ident(s);
        if name.is_empty() || name == "self" {
            if !prefix.is_empty() {
                out.push(prefix);
            }
            return;
        }
        let mut next = prefix;
        next.push(name.clone());
        match s[name.len()..].trim_start().strip_prefix("::") {
            Some(rest) => leaves(next, rest, out),
            None => out.push(next),
        }
    }
    let here = module_path(file);
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices("crate::") {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b'$') {
            continue;
        }
        leaves(Vec::new(), &text[i + "crate::".len()..], &mut out);
    }
    for start in ["super::", "self::"] {
        for (i, _) in text.match_indices(start) {
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':') {
                continue;
            }
            // `self` is the file's module; `super` its parent (a `mod.rs` is its folder's module).
            let mut base = here.clone();
            let mut rest = &text[i..];
            if let Some(r) = rest.strip_prefix("self::") {
                rest = r;
            }
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            leaves(base, rest, &mut out);
        }
    }
    out
}

/// Rule: no import cycle between aggregate folders; an aggregate names another aggregate only to propose its
/// events (`other::events::…`), and reads its state only through `crate::read`; aggregates import modules,
/// not the crate root's re-exports, and nothing above them.
#[test]
fn aggregates_form_no_import_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut root_users = Vec::new();
    let mut reads_state = Vec::new();
    for file in rust_files(&root().join("src")) {
        let from = module_of(&file);
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for path in crate_paths(&file, &text) {
            let Some(name) = path.first() else { continue };
            if name.starts_with(char::is_uppercase) {
                if AGGREGATES.contains(&from.as_str()) {
                    // The root re-exports from above the aggregates; an aggregate names the module instead.
                    root_users.push(format!("{} uses crate::{name}", file.display()));
                }
                continue;
            }
            if *name == from {
                continue;
            }
            if AGGREGATES.contains(&from.as_str())
                && AGGREGATES.contains(&name.as_str())
                && path.get(1).is_some_and(|m| m != "events")
            {
                reads_state.push(format!("{} uses crate::{}", file.display(), path.join("::")));
            }
            edges.entry(from.clone()).or_default().insert(name.clone());
        }
    }
    assert!(root_users.is_empty(), "aggregates must import modules, not the crate root's re-exports: {root_users:#?}");
    assert!(
        reads_state.is_empty(),
        "an aggregate may name another's events only; it reads the other's state through crate::read: {reads_state:#?}"
    );
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                stack.extend(edges.get(&m).into_iter().flatten().cloned());
            }
        }
        false
    };
    let mut cycles = Vec::new();
    for a in AGGREGATES {
        for b in AGGREGATES.iter().filter(|b| **b > a) {
            if reaches(a, b) && reaches(b, a) {
                cycles.push(format!("{a} ↔ {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles between aggregates: {cycles:?}\nedges: {edges:#?}");
    for a in AGGREGATES {
        for forbidden in ["fleet", "event", "log", "upgrade", "wire"] {
            assert!(!reaches(a, forbidden) || forbidden == "event" && !reaches("event", a), "{a} imports {forbidden}");
        }
    }
}

/// The import reader sees grouped and relative imports, so a cycle cannot hide behind `crate::{…}` or
/// `super::super::…`.
#[test]
fn the_import_reader_sees_grouped_and_relative_paths() {
    let file = root().join("src/machines/rules.rs");
    let text =
        "use crate::{nodes::events::X, read::{FleetRead, Ctx}};\nuse super::super::rollouts::view;\nuse super::fold;";
    let got: Vec<String> = crate_paths(&file, text).into_iter().map(|p| p.join("::")).collect();
    assert_eq!(
        got,
        ["nodes::events::X", "read::FleetRead", "read::Ctx", "rollouts::view", "machines::fold"],
        "{got:?}"
    );
    let m = root().join("src/machines/mod.rs");
    let got: Vec<String> = crate_paths(&m, "use super::nodes::NodesState;").into_iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["nodes::NodesState"]);
}

/// The body of `fn name` in `text` (brace-matched from its first `{`).
fn body_of<'a>(text: &'a str, signature: &str) -> &'a str {
    let start = text.find(signature).unwrap_or_else(|| panic!("`{signature}` is missing"));
    let open = start + text[start..].find('{').unwrap();
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    &text[open..]
}

#[test]
fn check_and_evolve_dispatch_every_kind_with_no_wildcard() {
    let fleet = code(&std::fs::read_to_string(root().join("src/fleet/mod.rs")).unwrap());
    let catalogue = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let kinds: Vec<String> = catalogue
        .lines()
        .filter_map(|l| l.trim().split_once(" => ").map(|(_, k)| k.trim_end_matches(',').to_owned()))
        .filter(|k| k.chars().all(char::is_alphanumeric))
        .collect();
    assert!(kinds.len() >= 40, "the catalogue in lib.rs was not found: {kinds:?}");
    for signature in ["pub fn check(", "pub(crate) fn fold("] {
        let body = body_of(&fleet, signature);
        // An arm whose pattern is a bare binding (`_`, `other`, `p if …`) matches every kind left over.
        let wildcard = body.lines().find(|l| {
            let Some((pattern, _)) = l.split_once("=>") else { return false };
            let pattern = pattern.trim();
            let pattern = pattern.split(" if ").next().unwrap_or(pattern).trim();
            !pattern.is_empty() && pattern.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
        assert!(wildcard.is_none(), "`{signature}` has a wildcard arm: {wildcard:?}");
        for k in &kinds {
            assert!(body.contains(&format!("P::{k}(")), "`{signature}` has no arm for {k}");
        }
    }
}

#[test]
fn nothing_on_the_apply_path_panics() {
    let mut files: Vec<PathBuf> =
        rust_files(&root().join("src")).into_iter().filter(|f| !f.ends_with("tests.rs")).collect();
    files.push(root().join("../raft/src/state.rs"));
    files.push(root().join("../raft/src/format.rs"));
    let forbidden = [".unwrap()", ".expect(", "panic!", "unreachable!", "todo!", "unimplemented!"];
    let mut found = Vec::new();
    for file in files {
        let text = code(&std::fs::read_to_string(&file).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let justified = line.contains("infallible:") || i > 0 && lines[i - 1].contains("infallible:");
            if forbidden.iter().any(|f| line.contains(f)) && !justified {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "panics reachable from applying an entry (say `// infallible: why` if it cannot fail):\n{}",
        found.join("\n")
    );
}

#[test]
fn public_names_in_the_core_are_unique() {
    // Names every aggregate uses for the same role: its check, fold and planner functions live in its own module.
    const ROLES: [&str; 4] = ["decide", "view", "get", "get_mut"];
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in rust_files(&root().join("src")) {
        let text = code(&std::fs::read_to_string(&file).unwrap());
        let rel = file.strip_prefix(root().join("src")).unwrap().display().to_string();
        for line in text.lines() {
            let t = line.trim_start();
            for kw in ["pub struct ", "pub enum ", "pub trait ", "pub type ", "pub fn "] {
                if let Some(rest) = t.strip_prefix(kw) {
                    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    // Methods (indented) are scoped by their type; free functions and types are not.
                    let free = !line.starts_with(' ') || kw != "pub fn ";
                    if free && !name.is_empty() && !ROLES.contains(&name.as_str()) {
                        seen.entry(name).or_default().push(rel.clone());
                    }
                }
            }
        }
    }
    // The wire form of a state record shares the record's name, in `wire/`, and says so with a `From` of it.
    let wire_form = |name: &str, files: &[String]| {
        let (wire, other): (Vec<&String>, Vec<&String>) = files.iter().partition(|f| f.starts_with("wire/"));
        wire.len() == 1 && other.len() == 1 && {
            let text = std::fs::read_to_string(root().join("src").join(wire[0])).unwrap_or_default();
            text.contains(&format!("{name}> for {name} {{"))
        }
    };
    // An aggregate's rule and fold for the same event share the event's name, in its `rules.rs` and `fold.rs`.
    let dups: Vec<_> = seen
        .into_iter()
        .filter(|(name, files)| !wire_form(name, files))
        .filter(|(_, files)| {
            let distinct: BTreeSet<&String> = files.iter().collect();
            let rule_or_fold = files.iter().all(|f| f.ends_with("rules.rs") || f.ends_with("fold.rs"));
            let folders: BTreeSet<&str> = files.iter().map(|f| f.split('/').next().unwrap_or_default()).collect();
            distinct.len() > 1 && !(rule_or_fold && folders.len() == 1)
        })
        .collect();
    assert!(dups.is_empty(), "public names defined more than once in the core: {dups:#?}");
}
