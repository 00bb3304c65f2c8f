# A reserved address outside the ip pool.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ip pool 'rack2-v4': reserved range 10.0.3.1 is not inside 10.0.2.0/28";
  parity = true;
  declaration = lib.recursiveUpdate base { ipPools.rack2-v4.reserved = [ "10.0.3.1" ]; };
}
