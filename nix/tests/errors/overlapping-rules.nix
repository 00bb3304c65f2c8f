# Two trait rules at the same priority whose CPU ranges intersect (16.. and 32..).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rules 'big-workers' and 'workers' can match the same machine at priority 10";
  parity = true;
  declaration = lib.recursiveUpdate base {
    enrollmentRules.big-workers = {
      priority = 10;
      match.cpuThreads.min = 32;
      bind.pool = "workers";
    };
  };
}
