# A static node takes the address of a BGP peer (which is also reserved).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: duplicate address 10.0.1.2: node cp-1 and bgp peer 'rack1-tor'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.address = "10.0.1.2"; };
}
