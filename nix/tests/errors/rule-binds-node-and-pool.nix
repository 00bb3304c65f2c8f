# A rule must bind to a node or to a pool, not both.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'workers' must bind to exactly one of node or pool";
  parity = true;
  declaration = lib.recursiveUpdate base { enrollmentRules.workers.bind.node = "cp-1"; };
}
