# A gateway that is not a usable address of its ip pool (the broadcast address).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ip pool 'rack2-v4': gateway 10.0.2.15 is not a usable address in 10.0.2.0/28";
  parity = true;
  declaration = lib.recursiveUpdate base { ipPools.rack2-v4.gateway = "10.0.2.15"; };
}
