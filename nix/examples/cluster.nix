# The whole mkCluster result for the example declaration: spec, installPlans, topology, nixosConfigurations.
#
#   nix-instantiate --eval --strict --json nix/examples/cluster.nix -A installPlans.cp-1
#   nix-instantiate --eval --strict --json nix/examples/cluster.nix -A topology
(import ../lib).mkCluster (import ./declaration.nix)
