# A static address outside the node's ip pool.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1: address 10.0.2.9 is not a usable address of ip pool 'rack1-v4' (10.0.1.0/28)";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.address = "10.0.2.9"; };
}
