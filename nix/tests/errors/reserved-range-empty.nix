# A reserved range whose start is after its end.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ip pool 'rack2-v4': reserved range 10.0.2.9-10.0.2.6 is empty (its start is after its end)";
  parity = true;
  declaration = lib.recursiveUpdate base { ipPools.rack2-v4.reserved = [ "10.0.2.9-10.0.2.6" ]; };
}
