# A rule matches a rack that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'workers' uses unknown rack 'rack3'";
  parity = true;
  declaration = lib.recursiveUpdate base { enrollmentRules.workers.match.racks = [ "rack1" "rack3" ]; };
}
