# The Sendan Nix library. Pure: builtins only, no nixpkgs, so it evaluates anywhere `nix-instantiate` runs.
#
#   let sendan = import ./nix/lib; in sendan.mkCluster { name = "fra1"; ... }
#
# returns { spec; installPlans; topology; nixosConfigurations; } — see nix/README.md for the declaration format.
let
  util = import ./util.nix;
in
{
  apiVersion = "sendan.dev/v1alpha1";

  mkCluster = declaration: removeAttrs (import ./cluster.nix { inherit declaration; }) [ "unchecked" ];

  ipv4 = import ./ipv4.nix;

  inherit (util) recursiveUpdate;

  # For Sendan's own tests: the ClusterSpec document and the semantic error messages, without throwing them.
  internal.uncheckedCluster = declaration: (import ./cluster.nix { inherit declaration; checked = false; }).unchecked;
}
