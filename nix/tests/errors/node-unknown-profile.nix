# A node names a profile that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 uses unknown profile 'gpu'";
  parity = false;
  declaration = lib.recursiveUpdate base { nodes.cp-1.profile = "gpu"; };
}
