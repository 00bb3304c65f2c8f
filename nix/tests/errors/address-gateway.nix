# A static address that is the ip pool's gateway.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1: address 10.0.1.1 is the gateway of ip pool 'rack1-v4'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.address = "10.0.1.1"; };
}
