# A BGP peer in a rack that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: bgp peer 'rack1-tor' uses unknown rack 'rack3'";
  parity = true;
  declaration = lib.recursiveUpdate base { bgp.peers.rack1-tor.rack = "rack3"; };
}
