//! The HTTP contract: the OpenAPI document the server serves is the checked-in `api/openapi.json`, and every
//! JSON answer of every read endpoint — over a data directory holding every kind of event (the upgrade fixture's
//! copy) — matches the schema the document gives it. Each test states the property it checks.

use reqwest::Method;
use sendan_tests::contract::{contract, get, send};
use sendan_tests::upgrade::Reopened;
use serde_json::{Value, json};

/// Property: `GET /v1/openapi.json` answers exactly the checked-in document, without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let member = Reopened::start().await;
    let served: Value = sendan_tests::http()
        .get(format!("{}/v1/openapi.json", member.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/openapi.json");
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(served == checked_in, "the served OpenAPI document differs from api/openapi.json");
    assert_eq!(served["openapi"], "3.1.0");
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(|v| v[key].as_str().map(str::to_owned)).collect()
}

/// Property: every documented GET route that answers JSON (but the installer's own plan, which needs a
/// bootstrap token: the bootstrap tests read it) answers, for every node, machine, rollout and spec of the
/// fixture, JSON its schema in `api/openapi.json` accepts — with no field the schema does not name; so do
/// error answers (against `ErrorBody`) and the answers to a dry run, a plan and a submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_endpoint_answers_what_its_schema_says() {
    let member = Reopened::start().await;
    let (base, token) = (member.base.as_str(), member.token.as_str());
    for path in [
        "/readyz",
        "/v1/events",
        "/v1/events?after=100&limit=20",
        "/v1/nodes",
        "/v1/nodes?state=declared",
        "/v1/nodes?state=active",
        "/v1/nodes?state=discovered",
        "/v1/machines",
        "/v1/machines/refused",
        "/v1/rollouts",
        "/v1/spec",
        "/v1/spec?at=20",
        "/v1/audit/verify",
        "/v1/cluster",
        "/v1/cluster/local",
        "/v1/openapi.json",
        "/v1/services",
        "/v1/services/edge-proxy",
        "/v1/services/edge-proxy/endpoints",
    ] {
        let (status, body) = get(base, token, path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    let nodes = member.get("/v1/nodes").await;
    let node_ids = ids(&nodes["nodes"], "id");
    assert!(node_ids.len() >= 5, "{nodes}");
    for id in &node_ids {
        for path in [
            format!("/v1/nodes/{id}"),
            format!("/v1/nodes/{id}/history?limit=5"),
            format!("/v1/nodes/{id}/system"),
            format!("/v1/nodes/{id}/install"),
            format!("/v1/nodes/{id}/plan"),
            format!("/v1/nodes/{id}/instances"),
            format!("/v1/nodes/{id}/power"),
        ] {
            // A retired node has no plan (409); that answer is checked against ErrorBody.
            get(base, token, &path).await;
        }
    }
    let rollouts = member.get("/v1/rollouts").await;
    for r in rollouts["rollouts"].as_array().unwrap() {
        get(base, token, &format!("/v1/rollouts/{}", r["id"])).await;
    }
    let spec = member.get("/v1/spec").await;
    get(base, token, &format!("/v1/specs/{}", spec["digest"].as_str().unwrap())).await;

    // Errors answer ErrorBody.
    for path in ["/v1/nodes?state=sleeping", "/v1/nodes/nope", "/v1/rollouts/99999", "/v1/specs/00"] {
        let (status, body) = get(base, token, path).await;
        assert!((400..500).contains(&status), "GET {path}: {status} {body}");
    }

    let unchecked = contract().unchecked("get", &["/v1/bootstrap/plan"]);
    assert!(unchecked.is_empty(), "GET routes no answer was checked for: {unchecked:?}");

    // The writes' answers too (on this copy of the fixture).
    let machines = member.get("/v1/machines").await;
    let facts = &machines["machines"][0]["machine"]["facts"];
    let (status, _) = send(Method::POST, base, token, "/v1/enroll/dry-run", Some(facts)).await;
    assert_eq!(status, 200);
    let (status, _) = send(Method::POST, base, token, "/v1/spec/plan", Some(&spec["spec"])).await;
    assert_eq!(status, 200);
    let (status, body) =
        send(Method::POST, base, token, "/v1/services/plan", Some(&json!({"service": "edge-proxy"}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(Method::POST, base, token, "/v1/nodes/worker-01/heartbeat", Some(&json!({}))).await;
    assert!(status == 200 || status == 404, "{status} {body}");
    let drain = json!({ "type": "NodeDrainRequested", "node": node_ids[0], "comment": "contract test" });
    let (status, body) = send(Method::POST, base, token, "/v1/events", Some(&drain)).await;
    assert!(status == 200 || status == 409, "{status} {body}");
    let (status, _) = get(base, token, "/v1/events?after=243").await;
    assert_eq!(status, 200);
}

/// Property: the check can fail: an answer with a field its schema does not name, a field of the wrong type, a
/// required field missing, or an event with an unknown field beside its payload is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_refuses_answers_that_differ_from_their_schema() {
    let member = Reopened::start().await;
    let nodes = member.get("/v1/nodes").await;
    let c = contract();
    assert!(c.violations("GET", "/v1/nodes", 200, &nodes).is_ok());
    let mut extra = nodes.clone();
    extra["nodes"][0]["bogus"] = json!(1);
    let mut wrong = nodes.clone();
    wrong["seq"] = json!("x");
    let mut missing = nodes.clone();
    missing["nodes"][0].as_object_mut().unwrap().remove("state");
    let mut state = nodes.clone();
    state["nodes"][0]["state"] = json!("declared");
    for (what, body) in
        [("an extra field", extra), ("a wrong type", wrong), ("a missing field", missing), ("a state", state)]
    {
        assert!(c.violations("GET", "/v1/nodes", 200, &body).is_err(), "{what} passed the contract");
    }
    let events = member.get("/v1/events?after=0&limit=3").await;
    assert!(c.violations("GET", "/v1/events", 200, &events).is_ok());
    let mut odd = events.clone();
    odd["events"][1]["bogus"] = json!(true);
    assert!(c.violations("GET", "/v1/events", 200, &odd).is_err(), "an event with an unknown field passed");
    let mut untyped = events.clone();
    untyped["events"][1]["type"] = json!("NoSuchEvent");
    assert!(c.violations("GET", "/v1/events", 200, &untyped).is_err(), "an event of no kind passed");
}
