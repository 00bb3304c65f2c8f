//! Bearer tokens: generating them, keeping only their hashes, files for operators, and resolving a
//! request's `Authorization` header to the principal it speaks for.

use std::io::Write;
use std::path::Path;

use sendan_core::fleet::FleetState;
use sendan_core::machines::SessionEnded;
use sendan_core::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};

use crate::error::ApiError;

/// Who a request speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A node's agent, with the node token issued to it.
    Node(NodeId),
    /// A controller running on the leader (never a token: only in-process code speaks for it).
    System(&'static str),
    /// A netbooted installer with a bootstrap token: derived for the NIC `mac` (or issued for it, by an operator
    /// or an older release), bound to `machine` once the installer phoned home with it; an unused token works
    /// until `expires`.
    Bootstrap {
        token: Hash,
        mac: String,
        machine: Option<MachineId>,
        expires: Timestamp,
    },
}

impl Principal {
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Admin => Actor::Admin,
            Principal::Node(n) => Actor::Node(n.clone()),
            Principal::System(name) => Actor::System((*name).to_owned()),
            // Before phoning home the installer is known by its MAC only (a valid machine id).
            Principal::Bootstrap { machine: Some(m), .. } => Actor::Bootstrap(m.clone()),
            Principal::Bootstrap { mac, .. } => {
                Actor::Bootstrap(MachineId::new(mac.as_str()).unwrap_or_else(|_| MachineId::new("unknown").unwrap()))
            }
        }
    }
}

/// A new random token: `sendan-<kind>-` and 64 hex digits (256 bits).
pub fn generate(kind: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!("sendan-{kind}-{}", hex::encode(bytes))
}

pub fn hash(token: &str) -> Hash {
    Hash::of(token.as_bytes())
}

pub use sendan_core::machines::netboot::{
    StatelessToken, bootstrap_epoch, bootstrap_expiry, bootstrap_token, hmac_sha256, verify_bootstrap_token,
};

/// The bootstrap token an operator's `BootstrapTokenIssued` (or an older release's netboot) recorded by its
/// event id: derived from the cluster secret, so any member can hand it out again.
pub fn issued_bootstrap_token(cluster_secret: &str, issued: EventId) -> String {
    let mut message = b"sendan bootstrap token\0".to_vec();
    message.extend_from_slice(issued.as_bytes());
    format!("sendan-boot-{}", hex::encode(hmac_sha256(cluster_secret.as_bytes(), &message)))
}

fn same(a: &Hash, b: &Hash) -> bool {
    // Constant time: the comparison does not stop at the first differing byte.
    a.0.iter().zip(b.0.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Read a token or secret file (surrounding whitespace ignored).
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(t.to_owned())
}

/// Read `path`, or create it with a new secret of `kind`, readable by the owner only (0600).
/// Returns the secret and whether it was created.
pub fn read_or_create_secret(path: &Path, kind: &str) -> Result<(String, bool), String> {
    if path.exists() {
        return read_secret(path).map(|s| (s, false));
    }
    let secret = generate(kind);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    writeln!(f, "{secret}").and_then(|_| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((secret, true))
}

/// The tokens this member accepts.
pub struct Tokens {
    admin: Hash,
    /// Bootstrap tokens are signed with it.
    cluster_secret: String,
}

impl Tokens {
    pub fn new(admin_token: &str, cluster_secret: &str) -> Tokens {
        Tokens { admin: hash(admin_token), cluster_secret: cluster_secret.to_owned() }
    }

    /// Resolve an `Authorization` header value: the admin token, or a node token the log granted.
    pub fn resolve(&self, header: Option<&str>, fleet: &FleetState) -> Result<Principal, ApiError> {
        let Some(value) = header else {
            return Err(ApiError::Unauthorized(
                "this endpoint needs a bearer token: send `Authorization: Bearer <token>` \
                 (the admin token is in the server's data directory, admin.token)"
                    .into(),
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
        let h = hash(token);
        if same(&h, &self.admin) {
            return Ok(Principal::Admin);
        }
        if let Some(node) = fleet.token_node(&h) {
            return Ok(Principal::Node(node.clone()));
        }
        let now = crate::write::now();
        if let Some(found) = fleet.machines.bootstrap.session(&h, now) {
            return match found {
                Ok(s) => Ok(Principal::Bootstrap {
                    token: h,
                    mac: s.token.mac.clone(),
                    machine: s.machine.cloned(),
                    expires: s.token.expires,
                }),
                Err(SessionEnded::Spent(why)) => Err(ApiError::Forbidden(why)),
                Err(SessionEnded::Expired(why)) => Err(ApiError::Unauthorized(why)),
            };
        }
        if let Some(t) = verify_bootstrap_token(&self.cluster_secret, token) {
            if now >= t.expires {
                return Err(ApiError::Unauthorized(format!(
                    "this bootstrap token expired at {} before its machine phoned home; netboot the machine again \
                     for a new one",
                    t.expires
                )));
            }
            if t.epoch != bootstrap_epoch(fleet, &t.mac) {
                return Err(ApiError::Unauthorized(format!(
                    "this bootstrap token was handed out before MAC {} last phoned home (or this member has not \
                     caught up yet); netboot the machine again for a new one",
                    t.mac
                )));
            }
            return Ok(Principal::Bootstrap { token: h, mac: t.mac, machine: None, expires: t.expires });
        }
        Err(ApiError::Unauthorized("the bearer token is not valid on this cluster".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resolve_only_with_the_right_secret() {
        let t = Tokens::new("sendan-admin-abc", "cluster-secret");
        let mut fleet = FleetState::default();
        let node = NodeId::new("n1").unwrap();
        fleet.nodes.tokens.insert(hash("sendan-node-xyz"), node.clone());
        assert_eq!(t.resolve(Some("Bearer sendan-admin-abc"), &fleet).unwrap(), Principal::Admin);
        assert_eq!(t.resolve(Some("Bearer sendan-node-xyz"), &fleet).unwrap(), Principal::Node(node));
        for bad in [None, Some("sendan-admin-abc"), Some("Bearer "), Some("Bearer nope")] {
            assert_eq!(t.resolve(bad, &fleet).unwrap_err().status(), 401, "{bad:?}");
        }
    }

    #[test]
    fn issued_tokens_derive_per_event() {
        let a = issued_bootstrap_token("secret", EventId::from_u128(1));
        assert!(a.starts_with("sendan-boot-") && a.len() == "sendan-boot-".len() + 64);
        assert_eq!(a, issued_bootstrap_token("secret", EventId::from_u128(1)));
        assert_ne!(a, issued_bootstrap_token("secret", EventId::from_u128(2)));
        assert_ne!(a, issued_bootstrap_token("other", EventId::from_u128(1)));
    }

    #[test]
    fn created_secret_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin.token");
        let (a, created) = read_or_create_secret(&p, "admin").unwrap();
        assert!(created && a.starts_with("sendan-admin-") && a.len() == "sendan-admin-".len() + 64);
        let (b, created) = read_or_create_secret(&p, "admin").unwrap();
        assert_eq!((a, created), (b, false));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
