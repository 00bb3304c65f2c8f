# A static node outside any pool must name its class.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-3 has no class: set class, or put the node in a pool";
  parity = false;
  declaration = lib.recursiveUpdate base {
    nodes.cp-3 = {
      rack = "rack1";
      ipPool = "rack1-v4";
      profile = "base";
      diskLayout = "single";
    };
  };
}
