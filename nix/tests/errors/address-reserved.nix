# A static address inside a reserved range.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1: address 10.0.1.3 is reserved in ip pool 'rack1-v4' (10.0.1.2-10.0.1.4)";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.address = "10.0.1.3"; };
}
