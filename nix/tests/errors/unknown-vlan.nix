# An ip pool names a VLAN that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ip pool 'rack2-v4' uses unknown vlan 'storage'";
  parity = true;
  declaration = lib.recursiveUpdate base { ipPools.rack2-v4.vlan = "storage"; };
}
