# A rule binds to a node that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'cp-2' uses unknown node 'cp-3'";
  parity = true;
  declaration = lib.recursiveUpdate base { enrollmentRules.cp-2.bind.node = "cp-3"; };
}
