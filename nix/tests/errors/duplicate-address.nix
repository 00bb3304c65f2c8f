# A static node takes an address another static node already has.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: duplicate address 10.0.1.5: nodes cp-1 and cp-2";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.cp-2 = {
      rack = "rack1";
      ipPool = "rack1-v4";
      address = "10.0.1.5";
    };
  };
}
