# The example's ClusterSpec document, what `sendan plan` / `sendan apply` read:
#
#   nix-instantiate --eval --strict --json nix/examples/spec.nix
(import ./cluster.nix).spec
