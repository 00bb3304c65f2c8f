# A rule without criteria matches every machine, so it overlaps every rule at its priority.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rules 'anything' and 'cp-1' can match the same machine at priority 100";
  parity = true;
  declaration = lib.recursiveUpdate base {
    enrollmentRules.anything = {
      priority = 100;
      bind.pool = "workers";
    };
  };
}
