# A node's own system must be a flake output or a store path, not both.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 must set exactly one of system.flake or system.storePath";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.cp-1.system = {
      flake = "git+https://git.example.com/lab#nixosConfigurations.cp-1.config.system.build.toplevel";
      storePath = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-cp-1";
    };
  };
}
