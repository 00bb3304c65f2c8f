# Control-plane members run the Sendan server. Raft node ids follow the sorted names of the control-plane pool's
# members (cp-1 -> 1, cp-2 -> 2, cp-3 -> 3), so every member derives the same initial cluster from the spec.
{ pkgs, sendan, ... }:
let
  b = builtins;
  nodes = sendan.cluster.nodes;
  members = b.filter (n: nodes.${n}.pool == "control-plane") (b.attrNames nodes);
  idOf = n: 1 + b.length (b.filter (m: m < n) members);
  port = 7770;
in
{
  imports = [
    ./common.nix
    ./mirrored-boot.nix
    ../../modules/server.nix
  ];

  services.sendan.server = {
    enable = true;
    package = pkgs.callPackage ../../package.nix { };
    settings = {
      node-id = idOf sendan.node;
      listen = "${sendan.plan.network.address}:${toString port}";
      initial-cluster = b.concatStringsSep "," (
        map (n: "${toString (idOf n)}=${nodes.${n}.network.address}:${toString port}") members
      );
    };
    # Provisioned out of band (by the installer, from the bootstrap exchange); never part of the Nix store.
    adminTokenFile = "/var/lib/sendan-secrets/admin-token";
    clusterSecretFile = "/var/lib/sendan-secrets/cluster-secret";
    openFirewall = true;
  };
}
