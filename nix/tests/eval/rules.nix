# Enrollment rules that must NOT be reported as overlapping (the error cases cover the ones that must).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
  accepted = rules: builtins.attrNames (lib.mkCluster (lib.recursiveUpdate base { enrollmentRules = rules; })).spec.enrollmentRules;
  rule = priority: match: {
    inherit priority match;
    bind.pool = "workers";
  };
in
{
  disjointMacSetsAtOnePriority = {
    expr = accepted { cp-3 = rule 100 { macs = [ "52:54:00:00:03:01" "52:54:00:00:03:02" ]; }; };
    expected = [ "cp-1" "cp-2" "cp-3" "workers" ];
  };
  adjacentRangesDoNotIntersect = {
    # workers is cpuThreads 16..; this one ..15.
    expr = accepted { small = rule 10 { cpuThreads.max = 15; }; };
    expected = [ "cp-1" "cp-2" "small" "workers" ];
  };
  oneSeparatingCriterionIsEnough = {
    # Both match 16+ threads, but no machine is in rack1 and rack2 at once.
    expr = accepted {
      workers = rule 10 {
        cpuThreads.min = 16;
        racks = [ "rack1" ];
      };
      rack2-workers = rule 10 {
        cpuThreads.min = 16;
        racks = [ "rack2" ];
      };
    };
    expected = [ "cp-1" "cp-2" "rack2-workers" "workers" ];
  };
  differentPrioritiesMayOverlap = {
    expr = accepted { fallback = rule 0 { }; };
    expected = [ "cp-1" "cp-2" "fallback" "workers" ];
  };
  matchValuesAreNormalised = {
    expr = (lib.mkCluster (lib.recursiveUpdate base {
      enrollmentRules.cp-1.match = {
        macs = [ "52:54:00:00:01:01" "52:54:00:AB:CD:EF" ];
        systemUuids = [ "4C4C4544-0042-3510-8052-B4C04F4E4B31" ];
        memory.min = "30GiB";
      };
    })).spec.enrollmentRules.cp-1.match;
    expected = {
      machineIds = null;
      systemUuids = [ "4c4c4544-0042-3510-8052-b4c04f4e4b31" ];
      dmiSerials = null;
      macs = [ "52:54:00:00:01:01" "52:54:00:ab:cd:ef" ];
      cpuThreads = null;
      memoryBytes = {
        min = 32212254720;
        max = null;
      };
      diskCount = null;
      racks = null;
      switchPorts = null;
    };
  };
}
