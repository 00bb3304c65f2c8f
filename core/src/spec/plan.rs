//! The declared install plan of a node: everything the installer needs that the spec already knows (hostname,
//! network, disk layout, system, substituters). It is the same document `nix/lib` exposes as
//! `installPlans.<node>`; the bootstrap API adds what only enrollment knows (the resolved disks, a one-time token).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::disk::Disko;
use super::{API_VERSION, Bootstrap, Cidr, ClusterSpec, DiskLayout, SystemTarget};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallPlan {
    pub api_version: String,
    /// Always `InstallPlan`.
    pub kind: String,
    pub cluster: String,
    pub node: String,
    pub hostname: String,
    pub class: String,
    pub pool: Option<String>,
    pub rack: String,
    pub profile: String,
    pub platform: String,
    pub system: SystemTarget,
    pub network: PlanNetwork,
    pub disk_layout: PlanDiskLayout,
    pub bootstrap: Bootstrap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanNetwork {
    pub interface: String,
    pub ip_pool: String,
    pub address: Ipv4Addr,
    pub cidr: Cidr,
    pub prefix_length: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub vlan: Option<PlanVlan>,
    pub tagged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanVlan {
    pub name: String,
    pub id: u16,
}

/// The node's disk layout, selectors unresolved (the installer resolves them against the disks it finds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanDiskLayout {
    pub name: String,
    pub boot_disks: Vec<String>,
    pub disko: Disko,
}

impl PlanDiskLayout {
    pub fn to_layout(&self) -> DiskLayout {
        DiskLayout { description: None, boot_disks: self.boot_disks.clone(), disko: self.disko.clone() }
    }
}

impl ClusterSpec {
    /// The install plan of a declared node; `None` when the node is not declared or the spec is invalid in a way
    /// that leaves the plan undefined (run [`ClusterSpec::validate`] first).
    pub fn install_plan(&self, node: &str) -> Option<InstallPlan> {
        let n = self.nodes.get(node)?;
        let pool = self.ip_pools.get(&n.network.ip_pool)?;
        let layout = self.disk_layouts.get(&n.disk_layout)?;
        let vlan = match &pool.vlan {
            Some(name) => Some(PlanVlan { name: name.clone(), id: self.vlans.get(name)?.id }),
            None => None,
        };
        Some(InstallPlan {
            api_version: API_VERSION.to_owned(),
            kind: "InstallPlan".to_owned(),
            cluster: self.name.clone(),
            node: node.to_owned(),
            hostname: node.to_owned(),
            class: n.class.clone(),
            pool: n.pool.clone(),
            rack: n.rack.clone(),
            profile: n.profile.clone(),
            platform: self.profiles.get(&n.profile)?.platform.clone(),
            system: n.system.clone(),
            network: PlanNetwork {
                interface: n.network.interface.clone(),
                ip_pool: n.network.ip_pool.clone(),
                address: n.network.address,
                cidr: pool.cidr,
                prefix_length: pool.cidr.prefix_length(),
                gateway: pool.gateway,
                dns: pool.dns.clone(),
                vlan,
                tagged: pool.tagged,
            },
            disk_layout: PlanDiskLayout {
                name: n.disk_layout.clone(),
                boot_disks: layout.boot_disks.clone(),
                disko: layout.disko.clone(),
            },
            bootstrap: self.bootstrap.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::fixture;

    #[test]
    fn given_a_node_then_its_plan_carries_the_pool_network_and_the_layout() {
        let spec = fixture::spec();
        let plan = spec.install_plan("worker-02").unwrap();
        assert_eq!(plan.hostname, "worker-02");
        assert_eq!(plan.rack, "rack2");
        assert_eq!(plan.network.address, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(plan.network.prefix_length, 28);
        assert_eq!(plan.network.gateway, Some(Ipv4Addr::new(10, 0, 2, 1)));
        assert_eq!(plan.network.vlan, Some(PlanVlan { name: "prod".into(), id: 20 }));
        assert_eq!(plan.disk_layout.name, "single");
        assert_eq!(plan.disk_layout.boot_disks, ["root"]);
        assert_eq!(
            plan.system.flake.as_deref(),
            Some("git+https://git.example.com/lab#nixosConfigurations.worker-02.config.system.build.toplevel")
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["diskLayout"]["bootDisks"], serde_json::json!(["root"]));
        assert_eq!(serde_json::from_value::<InstallPlan>(json).unwrap(), plan);
        assert!(spec.install_plan("worker-99").is_none());
    }
}
