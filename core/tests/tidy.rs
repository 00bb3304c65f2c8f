//! Tidy tests, rust-analyzer style: rules about the shape of the code, checked by reading the source with plain
//! `cargo test`.
//!
//! - No import cycle between aggregate folders (`nodes`, `machines`, `specs`, `systems`, `rollouts`): each reads
//!   the others only through `crate::read`, below them.
//! - `fleet::check` and `fleet::fold` are exhaustive matches over `Payload` with no wildcard arm.
//! - Nothing reachable from applying a committed entry panics: no `unwrap()`, `expect(`, `panic!`,
//!   `unreachable!`, `todo!` or `unimplemented!` in the core's code (tests aside), nor in the raft crate's apply
//!   path, except on a line that says why it cannot fail (`// infallible: …`).
//! - No two public types or functions in the core share a name with different meanings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const AGGREGATES: [&str; 5] = ["nodes", "machines", "specs", "systems", "rollouts"];

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

#[test]
fn aggregates_form_no_import_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut root_users = Vec::new();
    for file in rust_files(&root().join("src")) {
        let from = module_of(&file);
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for (i, _) in text.match_indices("crate::") {
            let name: String =
                text[i + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name.is_empty() {
                continue;
            }
            if name.starts_with(char::is_uppercase) && AGGREGATES.contains(&from.as_str()) {
                // The root re-exports from above the aggregates; an aggregate names the module instead.
                root_users.push(format!("{} uses crate::{name}", file.display()));
            }
            if name != from && !name.starts_with(char::is_uppercase) {
                edges.entry(from.clone()).or_default().insert(name);
            }
        }
    }
    assert!(root_users.is_empty(), "aggregates must import modules, not the crate root's re-exports: {root_users:#?}");
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
        assert!(!body.contains("_ =>") && !body.contains("other =>"), "`{signature}` has a wildcard arm");
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
