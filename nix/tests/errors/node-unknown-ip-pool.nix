# A static node names an ip pool that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 uses unknown ip pool 'rack1-v6'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.ipPool = "rack1-v6"; };
}
