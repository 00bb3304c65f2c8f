# A static node names a pool that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 uses unknown pool 'control-plane'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.pool = "control-plane"; };
}
