# A static node outside any pool must name its ip pool.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-3 has no ip pool: set ipPool on the node, or one for rack 'rack1' on its pool";
  parity = false;
  declaration = lib.recursiveUpdate base {
    nodes.cp-3 = {
      class = "control";
      rack = "rack1";
    };
  };
}
