# A range whose minimum exceeds its maximum can never match.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'workers': match.cpuThreads 16..8 is empty, so the rule can never match";
  parity = true;
  declaration = lib.recursiveUpdate base { enrollmentRules.workers.match.cpuThreads.max = 8; };
}
