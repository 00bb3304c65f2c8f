//! The API's route table, and the OpenAPI 3.1 document generated from it (`GET /v1/openapi.json`).
//!
//! Every route the server answers is one [`Route`] here: its method and path, who may call it, its query, body
//! and answer types, and its handler. [`crate::app::router`] is built from this table and the document is
//! generated from it, so neither can list a route the other lacks. The schemas come from the types themselves
//! (`schemars`, JSON Schema 2020-12, the dialect OpenAPI 3.1 uses), under `components/schemas`. A copy is
//! checked in as `api/openapi.json`; a test fails when it drifts (regenerate it with
//! `SENDAN_BLESS=1 cargo test -p sendan-api openapi`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::routing::{MethodFilter, MethodRouter, on};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use sendan_core::facts::HardwareFacts;
use sendan_core::spec::ClusterSpec;
use sendan_core::wire;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::routes;

/// Which router (and so which body limit and which middleware) a route belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// The operator and agent API.
    Api,
    /// The edge a netbooted machine reaches: rate-limited per source address, small bodies.
    Bootstrap,
    /// Raft between members: postcard bodies, the cluster secret.
    Peer,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (probes, netboot, this document).
    Public,
    /// The admin token.
    Admin,
    /// The admin token, or the token of the node the path names.
    AdminOrNode,
    /// The admin token, or any node's token.
    AdminOrAnyNode,
    /// The admin token, a node token, or an installer's bootstrap token, each for what it may emit or read.
    Any,
    /// An installer's bootstrap token.
    Installer,
    /// Another member, with the cluster secret.
    Peer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Delete => MethodFilter::DELETE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Delete => "delete",
        }
    }
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A body going in or coming out.
#[derive(Clone, Copy)]
pub enum Content {
    /// No body (an answer with no content is `204`).
    Empty,
    Json(SchemaFn),
    /// Text of this media type.
    Text(&'static str),
    /// Server-sent events, each `data:` one event's JSON.
    EventStream(SchemaFn),
    /// postcard, between members only.
    Postcard,
    /// Any bytes (`application/octet-stream`).
    Bytes,
}

/// One route of the API.
#[derive(Clone, Copy)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub group: Group,
    pub access: Access,
    pub summary: &'static str,
    pub query: Option<SchemaFn>,
    pub body: Content,
    pub answer: Content,
    handler: fn(MethodFilter) -> MethodRouter<Arc<App>>,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn route(
    method: Method,
    path: &'static str,
    group: Group,
    access: Access,
    summary: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<Arc<App>>,
) -> Route {
    Route { method, path, group, access, summary, query: None, body: Content::Empty, answer: Content::Empty, handler }
}

impl Route {
    fn query<T: JsonSchema>(self) -> Route {
        Route { query: Some(schema::<T>), ..self }
    }
    fn body<T: JsonSchema>(self) -> Route {
        Route { body: Content::Json(schema::<T>), ..self }
    }
    fn raw_body(self, body: Content) -> Route {
        Route { body, ..self }
    }
    fn answers<T: JsonSchema>(self) -> Route {
        Route { answer: Content::Json(schema::<T>), ..self }
    }
    fn answers_raw(self, answer: Content) -> Route {
        Route { answer, ..self }
    }

    /// The handler, for the router.
    pub fn method_router(&self) -> MethodRouter<Arc<App>> {
        (self.handler)(self.method.filter())
    }
}

/// Every route, in the order the document lists them.
pub fn routes() -> Vec<Route> {
    use Access::{Admin, AdminOrAnyNode, AdminOrNode, Any, Installer, Public};
    use Group::{Api, Bootstrap};
    use Method::*;
    vec![
        // Events.
        route(Post, "/v1/events", Api, Any, "Submit one event or a batch, applied atomically in order", |m| {
            on(m, routes::events::submit)
        })
        .body::<wire::Submission>()
        .answers::<wire::SubmitResponse>(),
        route(Get, "/v1/events", Api, Any, "List events: a page of the log, filtered", |m| on(m, routes::events::list))
            .query::<routes::events::ListParams>()
            .answers::<wire::EventPage>(),
        route(Get, "/v1/events/watch", Api, Any, "Replay events after a cursor, then follow new ones", |m| {
            on(m, routes::events::watch)
        })
        .query::<routes::events::WatchParams>()
        .answers_raw(Content::EventStream(schema::<sendan_core::Event>)),
        // Nodes.
        route(Get, "/v1/nodes", Api, Admin, "Nodes, unbound machines and declared nodes", |m| {
            on(m, routes::nodes::list)
        })
        .query::<routes::nodes::NodesParams>()
        .answers::<wire::NodesView>(),
        route(Get, "/v1/nodes/{id}", Api, AdminOrNode, "One node, its machine and its legal lifecycle events", |m| {
            on(m, routes::nodes::show)
        })
        .query::<routes::nodes::AtParams>()
        .answers::<wire::NodeView>(),
        route(Get, "/v1/nodes/{id}/history", Api, AdminOrNode, "The events about one node", |m| {
            on(m, routes::nodes::history)
        })
        .query::<routes::events::ListParams>()
        .answers::<wire::EventPage>(),
        route(Post, "/v1/nodes/{id}/token", Api, Admin, "Issue a new node token, shown once", |m| {
            on(m, routes::nodes::issue_token)
        })
        .answers::<wire::IssuedToken>(),
        route(Get, "/v1/nodes/{id}/system", Api, AdminOrNode, "A node's desired and running NixOS system", |m| {
            on(m, routes::systems::node_system)
        })
        .query::<routes::nodes::AtParams>()
        .answers::<wire::NodeSystemView>(),
        route(Get, "/v1/nodes/{id}/power", Api, Admin, "A node's BMC, power requests and power state", |m| {
            on(m, routes::nodes::power)
        })
        .query::<routes::nodes::PowerParams>()
        .answers::<wire::NodePowerView>(),
        route(Get, "/v1/nodes/{id}/plan", Api, AdminOrNode, "The install plan the node would be served", |m| {
            on(m, routes::enrollment::node_plan)
        })
        .answers::<wire::ServedPlan>(),
        route(Get, "/v1/nodes/{id}/install", Api, AdminOrNode, "What the log says about a node's install", |m| {
            on(m, routes::enrollment::node_install)
        })
        .query::<routes::nodes::AtParams>()
        .answers::<wire::InstallView>(),
        // Rollouts.
        route(Get, "/v1/rollouts", Api, Admin, "Every rollout, newest first", |m| on(m, routes::systems::list))
            .query::<routes::systems::RolloutParams>()
            .answers::<wire::RolloutsView>(),
        route(Get, "/v1/rollouts/{id}", Api, Admin, "One rollout: its waves and where each member stands", |m| {
            on(m, routes::systems::show)
        })
        .answers::<wire::RolloutView>(),
        route(Post, "/v1/rollouts/{id}/abort", Api, Admin, "Halt a running rollout as the operator", |m| {
            on(m, routes::systems::abort)
        })
        .body::<wire::AbortRequest>()
        .answers::<wire::SubmitResponse>(),
        // Services.
        route(Get, "/v1/services", Api, Admin, "Every declared service: replicas, live and healthy instances", |m| {
            on(m, routes::services::list)
        })
        .answers::<wire::ServicesView>(),
        route(
            Get,
            "/v1/services/{name}",
            Api,
            Admin,
            "One service: its instances per node, health, and what waits",
            |m| on(m, routes::services::show),
        )
        .answers::<wire::ServiceView>(),
        route(
            Get,
            "/v1/services/{name}/endpoints",
            Api,
            AdminOrAnyNode,
            "Where a service's healthy instances are reached",
            |m| on(m, routes::services::endpoints),
        )
        .answers::<wire::EndpointsView>(),
        route(
            Get,
            "/v1/services/{name}/endpoints/watch",
            Api,
            AdminOrAnyNode,
            "The endpoints now, then each time they change",
            |m| on(m, routes::services::watch_endpoints),
        )
        .answers_raw(Content::EventStream(schema::<wire::EndpointsView>)),
        route(
            Post,
            "/v1/services/plan",
            Api,
            Admin,
            "The scheduler's dry run for one service, every node explained",
            |m| on(m, routes::services::plan),
        )
        .body::<wire::ServicePlanRequest>()
        .answers::<wire::ServicePlanView>(),
        route(Get, "/v1/nodes/{id}/instances", Api, AdminOrNode, "The instances the log holds on a node", |m| {
            on(m, routes::services::node_instances)
        })
        .answers::<wire::NodeInstancesView>(),
        route(Post, "/v1/nodes/{id}/heartbeat", Api, AdminOrNode, "A node agent is alive (not an event)", |m| {
            on(m, routes::services::heartbeat)
        })
        .answers::<wire::HeartbeatAck>(),
        // Machines and enrollment.
        route(
            Get,
            "/v1/machines",
            Api,
            Admin,
            "Every machine that phoned home, and why an unbound one is unbound",
            |m| on(m, routes::enrollment::machines),
        )
        .query::<routes::nodes::AtParams>()
        .answers::<wire::MachinesView>(),
        route(Get, "/v1/machines/refused", Api, Admin, "This member's recent phone-home refusals", |m| {
            on(m, routes::bootstrap::refused)
        })
        .answers::<wire::RefusedView>(),
        route(Post, "/v1/machines/refused/{id}/accept", Api, Admin, "Vouch for a refused phone-home", |m| {
            on(m, routes::bootstrap::accept_refused)
        })
        .answers::<wire::SubmitResponse>(),
        route(Post, "/v1/enroll/dry-run", Api, Admin, "Which enrollment rule would bind these facts, and why", |m| {
            on(m, routes::enrollment::dry_run)
        })
        .body::<HardwareFacts>()
        .answers::<wire::Explanation>(),
        // Specs.
        route(Get, "/v1/spec", Api, Admin, "The live spec (or the one live at a seq)", |m| on(m, routes::spec::live))
            .query::<routes::nodes::AtParams>()
            .answers::<wire::SpecView>(),
        route(Post, "/v1/spec/plan", Api, Admin, "What applying a ClusterSpec would change", |m| {
            on(m, routes::spec::plan)
        })
        .body::<ClusterSpec>()
        .answers::<wire::PlanView>(),
        route(Get, "/v1/specs/{digest}", Api, Admin, "Any spec ever applied, by digest", |m| {
            on(m, routes::spec::by_digest)
        })
        .answers::<wire::SpecView>(),
        // The log and the members.
        route(Get, "/v1/audit/verify", Api, Admin, "Recompute the hash chain of the member asked", |m| {
            on(m, routes::audit::verify)
        })
        .answers::<wire::VerifyView>(),
        route(Get, "/v1/cluster", Api, Admin, "Every member's role, term and log positions", |m| {
            on(m, routes::cluster::status)
        })
        .answers::<wire::ClusterStatus>(),
        route(Get, "/v1/cluster/local", Api, Admin, "The member asked, as it reports itself", |m| {
            on(m, routes::cluster::local)
        })
        .answers::<wire::MemberStatus>(),
        route(Post, "/v1/cluster/members", Api, Admin, "Add a voting member", |m| on(m, routes::cluster::add))
            .body::<wire::AddMember>(),
        route(Delete, "/v1/cluster/members/{id}", Api, Admin, "Remove a member", |m| on(m, routes::cluster::remove)),
        route(Get, "/v1/openapi.json", Api, Public, "This document", |m| on(m, served))
            .answers_raw(Content::Json(|_| Schema::from(true))),
        route(Get, "/healthz", Api, Public, "Liveness: the process serves HTTP", |m| on(m, routes::health::healthz))
            .answers_raw(Content::Text("text/plain")),
        route(Get, "/readyz", Api, Public, "Readiness: a leader is known and everything committed is applied", |m| {
            on(m, routes::health::readyz)
        })
        .answers::<wire::Readiness>(),
        route(Get, "/metrics", Api, Admin, "Prometheus metrics", |m| on(m, routes::health::metrics))
            .answers_raw(Content::Text("text/plain; version=0.0.4")),
        // The bootstrap edge.
        route(
            Get,
            "/v1/boot/ipxe",
            Bootstrap,
            Public,
            "The iPXE script of a machine, by the MAC it netboots from",
            |m| on(m, routes::bootstrap::ipxe),
        )
        .query::<routes::bootstrap::IpxeParams>()
        .answers_raw(Content::Text("text/plain")),
        route(
            Get,
            "/v1/boot/files/{*path}",
            Bootstrap,
            Public,
            "A file of the member's boot directory (installer and rescue images), with ranges and ETags",
            |m| on(m, routes::bootfiles::file),
        )
        .answers_raw(Content::Bytes),
        route(Post, "/v1/bootstrap/phone-home", Bootstrap, Installer, "Report the machine's hardware facts", |m| {
            on(m, routes::bootstrap::phone_home)
        })
        .body::<wire::PhoneHome>()
        .answers::<wire::PhoneHomeView>(),
        route(Get, "/v1/bootstrap/plan", Bootstrap, Installer, "The install plan of the installer's node", |m| {
            on(m, routes::bootstrap::plan)
        })
        .answers::<wire::ServedPlan>(),
        route(
            Post,
            "/v1/bootstrap/node-token",
            Bootstrap,
            Installer,
            "Spend the bootstrap token for a node token",
            |m| on(m, routes::bootstrap::node_token),
        )
        .body::<wire::TokenExchange>()
        .answers::<wire::Exchanged>(),
        // Raft between members.
        route(Post, "/raft/append", Group::Peer, Access::Peer, "Raft AppendEntries", |m| on(m, routes::peer::append))
            .raw_body(Content::Postcard)
            .answers_raw(Content::Postcard),
        route(Post, "/raft/vote", Group::Peer, Access::Peer, "Raft RequestVote", |m| on(m, routes::peer::vote))
            .raw_body(Content::Postcard)
            .answers_raw(Content::Postcard),
        route(Post, "/raft/snapshot", Group::Peer, Access::Peer, "Raft InstallSnapshot, in chunks", |m| {
            on(m, routes::peer::snapshot)
        })
        .raw_body(Content::Postcard)
        .answers_raw(Content::Postcard),
        route(Post, "/raft/submit", Group::Peer, Access::Peer, "A follower forwarding proposals to the leader", |m| {
            on(m, routes::peer::submit)
        })
        .raw_body(Content::Postcard)
        .answers_raw(Content::Postcard),
        route(
            Post,
            "/raft/membership",
            Group::Peer,
            Access::Peer,
            "A membership change forwarded to the leader",
            |m| on(m, routes::peer::membership),
        )
        .raw_body(Content::Postcard)
        .answers_raw(Content::Postcard),
        route(Post, "/raft/status", Group::Peer, Access::Peer, "A member's status, for `GET /v1/cluster`", |m| {
            on(m, routes::peer::status)
        })
        .raw_body(Content::Postcard)
        .answers_raw(Content::Postcard),
        route(
            Post,
            "/raft/heartbeat",
            Group::Peer,
            Access::Peer,
            "A node agent's heartbeat, passed on to the leader",
            |m| on(m, routes::services::peer_heartbeat),
        )
        .raw_body(Content::Postcard)
        .answers_raw(Content::Postcard),
    ]
}

/// `GET /v1/openapi.json`.
async fn served() -> axum::Json<Value> {
    axum::Json(document().clone())
}

/// The OpenAPI document, generated once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(generate)
}

fn security(access: Access) -> Value {
    let one = |names: &[&str]| Value::Array(names.iter().map(|n| json!({ *n: [] })).collect());
    match access {
        Access::Public => json!([]),
        Access::Admin => one(&["admin"]),
        Access::AdminOrNode | Access::AdminOrAnyNode => one(&["admin", "node"]),
        Access::Any => one(&["admin", "node", "installer"]),
        Access::Installer => one(&["installer"]),
        Access::Peer => one(&["peer"]),
    }
}

fn media(content: Content, g: &mut SchemaGenerator) -> Option<Value> {
    let value = match content {
        Content::Empty => return None,
        Content::Json(f) => json!({ "application/json": { "schema": f(g) } }),
        Content::Text(mime) => json!({ mime: { "schema": { "type": "string" } } }),
        Content::EventStream(f) => json!({
            "text/event-stream": {
                "schema": { "type": "string", "description": "Server-sent events: `id:` the seq, `data:` the event." },
                "x-event-schema": f(g),
            }
        }),
        Content::Postcard | Content::Bytes => {
            json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } })
        }
    };
    Some(value)
}

/// The query parameters of `query`'s (flat, inlined) object schema.
fn query_parameters(query: SchemaFn) -> Vec<Value> {
    let mut g = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator();
    let schema = query(&mut g).to_value();
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = Vec::new();
    for (name, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let mut prop = prop.clone();
        let description = prop.as_object_mut().and_then(|p| p.remove("description"));
        let mut p =
            json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": prop });
        if let Some(d) = description {
            p["description"] = d;
        }
        out.push(p);
    }
    out
}

/// A route's path as the document writes it: axum's catch-all `{*name}` is OpenAPI's `{name}`.
pub fn doc_path(path: &str) -> String {
    path.replace("{*", "{")
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| name.trim_start_matches('*'))
        .map(|name| {
            let what = match (path, name) {
                (p, "id") if p.starts_with("/v1/nodes/") => "The node id.",
                (p, "id") if p.starts_with("/v1/rollouts/") => "The rollout id (the seq of its `RolloutStarted`).",
                (p, "id") if p.starts_with("/v1/machines/refused/") => "The refusal's number on this member.",
                (p, "id") if p.starts_with("/v1/cluster/members/") => "The member id.",
                (_, "digest") => "The spec's sha256 digest (hex).",
                (_, "path") => "A file's path below the boot directory (it may contain `/`).",
                _ => "A path parameter.",
            };
            json!({ "name": name, "in": "path", "required": true, "description": what, "schema": { "type": "string" } })
        })
        .collect()
}

fn operation(r: &Route, g: &mut SchemaGenerator) -> Value {
    let op_id = format!(
        "{}{}",
        r.method.name(),
        r.path
            .replace(['{', '}', '.', '*'], "")
            .split(['/', '-'])
            .filter(|s| !s.is_empty())
            .map(|s| format!("_{s}"))
            .collect::<String>()
    );
    let tag = match r.group {
        Group::Api => "api",
        Group::Bootstrap => "bootstrap",
        Group::Peer => "peer",
    };
    let mut params = path_parameters(r.path);
    if let Some(q) = r.query {
        params.extend(query_parameters(q));
    }
    let mut op = json!({ "operationId": op_id, "summary": r.summary, "tags": [tag], "security": security(r.access) });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(content) = media(r.body, g) {
        op["requestBody"] = json!({ "required": true, "content": content });
    }
    let mut responses = Map::new();
    match media(r.answer, g) {
        Some(content) => responses.insert("200".into(), json!({ "description": "OK", "content": content })),
        None => responses.insert("204".into(), json!({ "description": "Done; no content" })),
    };
    let error = g.subschema_for::<wire::ErrorBody>();
    responses.insert(
        "default".into(),
        json!({
            "description": "An error: a stable `code` and a `message` a person can act on (4xx: the request; 5xx: the cluster)",
            "content": { "application/json": { "schema": error } },
        }),
    );
    op["responses"] = Value::Object(responses);
    op
}

fn generate() -> Value {
    let mut g =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for r in routes() {
        let path = doc_path(r.path);
        if !paths.contains_key(&path) {
            order.push(path.clone());
        }
        let op = operation(&r, &mut g);
        paths.entry(path).or_default().insert(r.method.name().into(), op);
    }
    let mut path_map = Map::new();
    for p in order {
        let ops = paths.remove(&p).unwrap_or_default();
        path_map.insert(p, Value::Object(ops));
    }
    let mut schemas = Value::Object(g.take_definitions(true));
    // The caps decoding enforces on every event's strings and lists, stated where a client reads them.
    for name in ["Payload", "ProposalEnvelope", "EventEnvelope"] {
        if let Some(s) = schemas.get_mut(name) {
            sendan_core::bounds::annotate_caps(s);
        }
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Sendan",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of a Sendan cluster member: the event log, the fleet projected from it, the \
                            bootstrap edge and Raft between members. Every field Sendan defines is snake_case; the \
                            ClusterSpec and install plan documents keep the camelCase names of their Nix declaration.",
        },
        "servers": [{ "url": "http://127.0.0.1:7770", "description": "the embedded single-member default" }],
        "tags": [
            { "name": "api", "description": "Operators and node agents" },
            { "name": "bootstrap", "description": "Netbooted installers: rate-limited per address, small bodies" },
            { "name": "peer", "description": "Raft between members (postcard bodies)" },
        ],
        "paths": path_map,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "admin": { "type": "http", "scheme": "bearer", "description": "The admin token (`admin.token` in the data directory)." },
                "node": { "type": "http", "scheme": "bearer", "description": "A node's token (`sendan node token`, or exchanged by its installer)." },
                "installer": { "type": "http", "scheme": "bearer", "description": "A bootstrap token from the machine's iPXE script." },
                "peer": { "type": "http", "scheme": "bearer", "description": "A token derived from the cluster secret, between members." },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn checked_in_openapi_matches_the_route_table_and_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = serde_json::to_string_pretty(document()).unwrap() + "\n";
        if std::env::var_os("SENDAN_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} does not match the route table and the wire types; regenerate it with \
             `SENDAN_BLESS=1 cargo test -p sendan-api openapi` and commit the result",
            path.display()
        );
    }

    /// The document states the caps decoding enforces: a string one byte past its stated `maxLength` is refused.
    #[test]
    fn event_fields_state_the_caps_decoding_enforces() {
        let schemas = &document()["components"]["schemas"];
        let failed = schemas["Payload"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["properties"]["type"]["const"] == "NodeFailed")
            .unwrap();
        let reason = failed["properties"]["reason"]["maxLength"].as_u64().unwrap() as usize;
        let comment = schemas["ProposalEnvelope"]["properties"]["comment"]["maxLength"].as_u64().unwrap() as usize;
        assert_eq!((reason, comment), (sendan_core::bounds::MAX_TEXT, sendan_core::bounds::MAX_COMMENT));
        let over = |field: &str, n: usize| {
            let mut e = json!({"type": "NodeFailed", "node": "n1", "reason": "r"});
            e[field] = Value::String("x".repeat(n));
            sendan_core::bounds::check_event_json(&e)
        };
        assert!(over("reason", reason).is_ok() && over("reason", reason + 1).is_err());
        assert!(over("comment", comment).is_ok() && over("comment", comment + 1).is_err());
        let wave = schemas["Payload"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["properties"]["type"]["const"] == "RolloutWaveStarted")
            .unwrap();
        assert_eq!(wave["properties"]["nodes"]["maxItems"], sendan_core::bounds::MAX_LIST);
    }

    #[test]
    fn every_route_is_documented_once_with_every_reference_resolved() {
        let doc = document();
        let mut seen = std::collections::BTreeSet::new();
        for r in routes() {
            assert!(seen.insert((r.path, r.method.name())), "{} {} is in the table twice", r.method.name(), r.path);
            assert!(
                doc["paths"][doc_path(r.path)][r.method.name()].is_object(),
                "{} {} is not documented",
                r.method.name(),
                r.path
            );
        }
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(
                !name.ends_with(|c: char| c.is_ascii_digit()),
                "two types are both called {}: give one a `#[schemars(rename)]`",
                name.trim_end_matches(|c: char| c.is_ascii_digit())
            );
        }
        let text = doc.to_string();
        for (i, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
            let rest = &text[i + "\"$ref\":\"#/components/schemas/".len()..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "$ref to {name}, which is not defined");
        }
    }
}
