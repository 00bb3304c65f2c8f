# Two MAC rules at the same priority share a MAC (compared case-insensitively).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rules 'cp-1' and 'cp-1-spare' can match the same machine at priority 100";
  parity = true;
  declaration = lib.recursiveUpdate base {
    enrollmentRules.cp-1-spare = {
      priority = 100;
      match.macs = [ "52:54:00:00:01:02" "52:54:00:00:01:01" ];
      bind.node = "cp-1";
    };
  };
}
