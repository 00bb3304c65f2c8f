# An enrollment rule binds to a pool that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'workers' uses unknown pool 'gpu-nodes'";
  parity = true;
  declaration = lib.recursiveUpdate base { enrollmentRules.workers.bind.pool = "gpu-nodes"; };
}
