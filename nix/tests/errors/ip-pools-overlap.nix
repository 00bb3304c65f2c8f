# Two ip pools whose networks overlap.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: ip pools 'lab-wide' (10.0.0.0/16) and 'rack1-v4' (10.0.1.0/28) overlap";
  parity = true;
  declaration = lib.recursiveUpdate base { ipPools.lab-wide.cidr = "10.0.0.0/16"; };
}
