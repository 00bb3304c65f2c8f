# Store paths are checked for their shape.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: nodes.cp-1.system.storePath must be a store path such as /nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01";
  parity = false;
  declaration = lib.recursiveUpdate base { nodes.cp-1.system.storePath = "/nix/store/nixos-system-cp-1"; };
}
