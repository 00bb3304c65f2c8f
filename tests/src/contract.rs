//! The API's contract, as tests check it: every JSON answer is validated against the schema the checked-in
//! OpenAPI document (`api/openapi.json`) gives for its route and status.
//!
//! The document's object schemas are closed for the check (`additionalProperties: false` wherever a schema
//! lists properties and says nothing about others), so an answer with a field the document does not know fails
//! as surely as one missing a required field. `Event` and `Proposal` are already closed, with
//! `unevaluatedProperties: false` over their envelope and payload.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

const DOC: &str = "urn:sendan:openapi";

pub struct Contract {
    doc: Value,
    schemas: boon::Schemas,
    compiled: HashMap<String, boon::SchemaIndex>,
    /// `(method, path template)` of every route an answer was checked for.
    checked: Mutex<BTreeSet<(String, String)>>,
}

/// The one contract of this test process.
pub fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(Contract::load)
}

/// The definitions an `allOf` combines: left open, since their combination closes them.
fn combined(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(parts)) = m.get("allOf") {
                    for p in parts {
                        if let Some(r) = p.get("$ref").and_then(Value::as_str) {
                            out.insert(r.trim_start_matches("#/components/schemas/").to_owned());
                        }
                    }
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(doc, &mut out);
    out
}

fn close(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties")
                && !m.contains_key("additionalProperties")
                && !m.contains_key("unevaluatedProperties")
            {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(close);
        }
        Value::Array(a) => a.iter_mut().for_each(close),
        _ => {}
    }
}

impl Contract {
    fn load() -> Contract {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/openapi.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("api/openapi.json")).unwrap();
        let open = combined(&doc);
        let mut strict = doc.clone();
        if let Some(Value::Object(defs)) = strict.pointer_mut("/components/schemas") {
            for (name, schema) in defs.iter_mut() {
                if !open.contains(name) {
                    close(schema);
                }
            }
        }
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.add_resource(DOC, strict).expect("the OpenAPI document loads as a schema resource");
        let mut schemas = boon::Schemas::new();
        let mut compiled = HashMap::new();
        let names: Vec<String> =
            doc["components"]["schemas"].as_object().expect("components/schemas").keys().cloned().collect();
        for name in names {
            let at = format!("{DOC}#/components/schemas/{name}");
            let idx = compiler.compile(&at, &mut schemas).unwrap_or_else(|e| panic!("schema {name}: {e:#}"));
            compiled.insert(name, idx);
        }
        Contract { doc, schemas, compiled, checked: Mutex::default() }
    }

    /// The path template of the document that `path` (no query) matches.
    fn template(&self, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .find(|t| {
                let ts: Vec<&str> = t.split('/').collect();
                ts.len() == segs.len() && ts.iter().zip(&segs).all(|(t, s)| t.starts_with('{') || t == s)
            })
            .cloned()
    }

    /// Check `body`, answered with `status` to `method path`, against the document; panics naming every
    /// violation.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        if let Err(e) = self.violations(method, path, status, body) {
            panic!("{e}");
        }
    }

    /// Why `body`, answered with `status` to `method path`, does not match the document, if it does not.
    pub fn violations(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let path = path.split('?').next().unwrap_or(path);
        let method = method.to_ascii_lowercase();
        let template = self.template(path).unwrap_or_else(|| panic!("{method} {path} is not in api/openapi.json"));
        let op = &self.doc["paths"][&template][&method];
        assert!(op.is_object(), "{method} {template} is not in api/openapi.json");
        let response = if (200..300).contains(&status) { &op["responses"]["200"] } else { &op["responses"]["default"] };
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{method} {template} answered {status} with JSON, which the document does not describe"
        );
        if schema == &Value::Bool(true) {
            return Ok(());
        }
        let name = schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/"));
        let name =
            name.unwrap_or_else(|| panic!("{method} {template}: the answer's schema is not a reference: {schema}"));
        if let Err(e) = self.schemas.validate(body, self.compiled[name]) {
            let text = body.to_string();
            return Err(format!(
                "{method} {path} ({status}) does not match the schema {name} of api/openapi.json:\n{e:#}\nbody: {}",
                &text[..text.len().min(2000)]
            ));
        }
        self.checked.lock().unwrap().insert((method, template));
        Ok(())
    }

    /// The documented routes of `method` that answer JSON on success, and that no check has covered yet.
    pub fn unchecked(&self, method: &str, except: &[&str]) -> Vec<String> {
        let checked = self.checked.lock().unwrap();
        let mut out = Vec::new();
        for (template, ops) in self.doc["paths"].as_object().into_iter().flatten() {
            let Some(op) = ops.get(method) else { continue };
            let json = op["responses"]["200"]["content"]["application/json"]["schema"].is_object();
            if json && !except.contains(&template.as_str()) && !checked.contains(&(method.to_owned(), template.clone()))
            {
                out.push(template.clone());
            }
        }
        out
    }
}

/// `GET base+path` with `token`, its answer checked against the contract; the JSON and the status.
pub async fn get(base: &str, token: &str, path: &str) -> (u16, Value) {
    send(reqwest::Method::GET, base, token, path, None).await
}

/// `method base+path` with `token` and a JSON `body`, its answer checked against the contract.
pub async fn send(method: reqwest::Method, base: &str, token: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = crate::http().request(method.clone(), format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let json: Value =
        resp.json().await.unwrap_or_else(|e| panic!("{method} {path} answered {status} without JSON: {e}"));
    contract().check(method.as_str(), path, status, &json);
    (status, json)
}
