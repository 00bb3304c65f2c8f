//! The ClusterSpec's JSON Schema, generated from the types. A copy is checked in at
//! `core/schema/cluster-spec.schema.json` for editors and other tools; a test fails when it drifts.

use super::ClusterSpec;

/// The JSON Schema (draft 2020-12) of a ClusterSpec document.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ClusterSpec)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const REGENERATE: &str = "SENDAN_BLESS=1 cargo test -p sendan-core spec";

    #[test]
    fn checked_in_schema_matches_the_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/cluster-spec.schema.json");
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("SENDAN_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} does not match the ClusterSpec types; regenerate it with `{REGENERATE}` and commit the result",
            path.display()
        );
    }

    #[test]
    fn schema_forbids_unknown_fields_and_pins_the_version() {
        let schema = json_schema();
        assert_eq!(schema["title"], "ClusterSpec");
        assert_eq!(schema["additionalProperties"], false);
        let text = schema.to_string();
        assert!(text.contains("sendan.dev/v1alpha1"), "{text}");
        let required = schema["required"].as_array().unwrap();
        for field in ["apiVersion", "kind", "name", "bootstrap"] {
            assert!(required.iter().any(|r| r == field), "{field} is not required");
        }
    }
}
