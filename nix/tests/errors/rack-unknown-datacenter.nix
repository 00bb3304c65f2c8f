# A rack in a datacenter that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: rack 'rack2' uses unknown datacenter 'osa1'";
  parity = true;
  declaration = lib.recursiveUpdate base { racks.rack2.datacenter = "osa1"; };
}
