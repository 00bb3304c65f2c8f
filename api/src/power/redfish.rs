//! The Redfish driver: a `ComputerSystem` resource, read and reset through HTTP(S) with basic auth.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use sendan_core::event::{BootDevice, BootOverride, Power};
use sendan_core::spec::Bmc;
use serde_json::{Value, json};

use super::{BmcError, Reset, err};

/// Where a Debian or NixOS server keeps its CA bundle: the roots a BMC's certificate is checked against when its
/// declaration names no `caFile`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct Redfish {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    /// Where the password came from, to name in an authentication error.
    password_file: String,
    /// The system's path, e.g. `/redfish/v1/Systems/1`.
    system: String,
}

impl Redfish {
    pub async fn connect(bmc: &Bmc, password: String) -> Result<Redfish, BmcError> {
        let base = bmc.address.trim_end_matches('/').to_owned();
        let http = client(&base, bmc.ca_file.as_deref())?;
        let (user, password_file) = (bmc.user.clone(), bmc.password_file.clone());
        let mut r = Redfish { http, base, user, password, password_file, system: String::new() };
        r.system = match &bmc.system {
            Some(s) => s.clone(),
            None => r.only_system().await?,
        };
        Ok(r)
    }

    async fn only_system(&self) -> Result<String, BmcError> {
        let systems = self.get("/redfish/v1/Systems").await?;
        let members: Vec<&str> = systems["Members"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x["@odata.id"].as_str()).collect())
            .unwrap_or_default();
        match members.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(err(format!("{} lists no systems at /redfish/v1/Systems", self.base))),
            many => Err(err(format!(
                "{} manages {} systems ({}); say which in the node's `bmc.system`",
                self.base,
                many.len(),
                many.join(", ")
            ))),
        }
    }

    pub async fn power(&self) -> Result<Power, BmcError> {
        let system = self.get(&self.system).await?;
        match system["PowerState"].as_str() {
            Some("On") | Some("PoweringOff") => Ok(Power::On),
            Some("Off") | Some("PoweringOn") => Ok(Power::Off),
            other => Err(err(format!("{}{} reports an unknown PowerState {other:?}", self.base, self.system))),
        }
    }

    pub async fn reset(&self, reset: Reset) -> Result<(), BmcError> {
        let kind = match reset {
            Reset::On => "On",
            Reset::ForceOff => "ForceOff",
            Reset::GracefulShutdown => "GracefulShutdown",
        };
        self.post_reset(kind).await.map(drop).map_err(BmcError::from)
    }

    /// `PowerCycle`, when the system lists it among its reset types; `Ok(false)` when it does not or answers
    /// 501 Not Implemented.
    pub async fn power_cycle(&self) -> Result<bool, BmcError> {
        let system = self.get(&self.system).await?;
        let allowed = &system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"];
        let listed = allowed.as_array().is_some_and(|a| a.iter().any(|v| v == "PowerCycle"));
        if !listed {
            return Ok(false);
        }
        match self.post_reset("PowerCycle").await {
            Ok(_) => Ok(true),
            Err(Status(501, _)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_boot(&self, boot: BootOverride) -> Result<(), BmcError> {
        let target = match boot.device {
            BootDevice::Pxe => "Pxe",
            BootDevice::Disk => "Hdd",
        };
        let enabled = if boot.once { "Once" } else { "Continuous" };
        let body = json!({"Boot": {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled}});
        let url = format!("{}{}", self.base, self.system);
        let req = self.http.patch(&url).basic_auth(&self.user, Some(&self.password)).json(&body);
        self.send(&url, req).await.map_err(BmcError::from).map(drop)
    }

    async fn post_reset(&self, kind: &str) -> Result<Value, Status> {
        let path = format!("{}/Actions/ComputerSystem.Reset", self.system);
        let url = format!("{}{}", self.base, path);
        let req = self.http.post(&url).basic_auth(&self.user, Some(&self.password)).json(&json!({"ResetType": kind}));
        self.send(&url, req).await.map_err(|Status(code, why)| Status(code, format!("ResetType {kind}: {why}")))
    }

    async fn get(&self, path: &str) -> Result<Value, BmcError> {
        let url = format!("{}{}", self.base, path);
        let req = self.http.get(&url).basic_auth(&self.user, Some(&self.password));
        self.send(&url, req).await.map_err(BmcError::from)
    }

    async fn send(&self, url: &str, req: reqwest::RequestBuilder) -> Result<Value, Status> {
        let res = req.send().await.map_err(|e| Status(0, format!("cannot reach {url}: {}", chain(&e))))?;
        let code = res.status();
        let text = res.text().await.unwrap_or_default();
        if code.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect());
        let why = match code.as_u16() {
            401 | 403 => format!(
                "{url} refused user '{}' with the password in {} (HTTP {})",
                self.user,
                self.password_file,
                code.as_u16()
            ),
            _ => format!("{url} answered HTTP {}: {}", code.as_u16(), message.trim()),
        };
        Err(Status(code.as_u16(), why))
    }
}

/// An HTTP failure with its status (0: no answer).
struct Status(u16, String);

impl From<Status> for BmcError {
    fn from(s: Status) -> BmcError {
        BmcError(s.1)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s = format!("{s}: {x}");
        src = x.source();
    }
    if s.contains("invalid peer certificate") {
        s.push_str(" (set the node's `bmc.caFile` to the certificates the BMC's certificate chains to)");
    }
    s
}

fn client(base: &str, ca_file: Option<&str>) -> Result<reqwest::Client, BmcError> {
    let mut roots = RootCertStore::empty();
    if base.starts_with("https://") {
        let file = ca_file.unwrap_or(SYSTEM_CA_BUNDLE);
        let certs = sendan_raft::tls::read_certificates(std::path::Path::new(file))
            .map_err(|e| err(format!("cannot read the BMC's CA certificates: {e}")))?;
        for c in certs {
            // A bundle may hold a certificate rustls cannot use; the others still count.
            let _ = roots.add(c);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| err(format!("cannot build an HTTP client for {base}: {e}")))
}
