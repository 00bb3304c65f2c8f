# Enrollment rules: when a rule can never match, and when two rules can match the same machine.
#
# A rule's `match` is a conjunction of criteria; an absent (null) criterion places no constraint. Two rules at the
# same priority "can match the same machine" unless one criterion that BOTH rules set proves they cannot:
#   - a set criterion (machineIds, systemUuids, dmiSerials, macs, racks, switchPorts) whose two value sets are
#     disjoint (MACs and UUIDs compare case-insensitively; they are lower-case after normalisation);
#   - a range criterion (cpuThreads, memoryBytes, diskCount) whose two inclusive ranges do not intersect.
# Anything else overlaps, including a rule without criteria (it matches every machine).
#
# A machine has several MACs and may be cabled to several switch ports, so two rules with disjoint MAC (or port)
# sets can still both match one machine whose NICs appear in both. The declaration cannot tell which MACs belong
# together, so this check treats disjoint sets as separate; the enrollment engine refuses to bind a machine that two
# rules match at the same top priority instead of picking one.
let
  b = builtins;
  util = import ./util.nix;

  setCriteria = [ "machineIds" "systemUuids" "dmiSerials" "macs" "racks" "switchPorts" ];
  rangeCriteria = [ "cpuThreads" "memoryBytes" "diskCount" ];

  disjointSets = x: y: !(b.any (v: b.elem v y) x);
  disjointRanges =
    x: y: (x.max != null && y.min != null && x.max < y.min) || (y.max != null && x.min != null && y.max < x.min);

  bothSet = c: m1: m2: m1.${c} != null && m2.${c} != null;

  showBound = v: if v == null then "" else toString v;
in
rec {
  inherit setCriteria rangeCriteria;

  separated =
    m1: m2:
    b.any (c: bothSet c m1 m2 && disjointSets m1.${c} m2.${c}) setCriteria
    || b.any (c: bothSet c m1 m2 && disjointRanges m1.${c} m2.${c}) rangeCriteria;

  # Messages for criteria that can never be met.
  neverMatches =
    name: match:
    b.concatMap (
      c:
      util.optional (match.${c} != null && match.${c} == [ ])
        "enrollment rule '${name}': match.${c} is empty, so the rule can never match"
    ) setCriteria
    ++ b.concatMap (
      c:
      let
        r = match.${c};
      in
      util.optional (r != null && r.min != null && r.max != null && r.min > r.max)
        "enrollment rule '${name}': match.${c} ${showBound r.min}..${showBound r.max} is empty, so the rule can never match"
    ) rangeCriteria;

  # Messages for every pair of rules that can match the same machine at the same priority.
  overlaps =
    rules:
    b.concatMap (
      pair:
      let
        x = b.elemAt pair 0;
        y = b.elemAt pair 1;
      in
      util.optional (
        rules.${x}.priority == rules.${y}.priority && !(separated rules.${x}.match rules.${y}.match)
      ) "enrollment rules '${x}' and '${y}' can match the same machine at priority ${toString rules.${x}.priority}"
    ) (util.pairs (b.attrNames rules));
}
