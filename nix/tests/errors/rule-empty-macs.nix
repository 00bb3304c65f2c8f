# An empty MAC list can never match.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'cp-1': match.macs is empty, so the rule can never match";
  parity = true;
  declaration = lib.recursiveUpdate base { enrollmentRules.cp-1.match.macs = [ ]; };
}
