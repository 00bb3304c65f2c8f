# Runs the positive pure-eval tests. Every file in ./eval is an attribute set of tests, each { expr; expected; };
# a test passes when `expr == expected`. The t30_nix_lib driver (and the flake's `checks.nix-lib`) evaluate this.
#
#   nix-instantiate --eval --strict --json nix/tests/run.nix
let
  b = builtins;
  files = b.filter (n: b.match ".*\\.nix" n != null) (b.attrNames (b.readDir ./eval));
  cases = b.concatMap (
    file:
    let
      tests = import (./eval + "/${file}");
      stem = b.replaceStrings [ ".nix" ] [ "" ] file;
    in
    map (t: {
      name = "${stem}.${t}";
      inherit (tests.${t}) expr expected;
      rerun = "nix-instantiate --eval --strict --json nix/tests/eval/${file} -A ${t}.expr";
    }) (b.attrNames tests)
  ) files;
  # A test that throws fails on its own instead of aborting the run (tryEval drops the message: rerun it).
  run =
    c:
    let
      attempt = b.tryEval (b.deepSeq c.expr c.expr);
    in
    {
      inherit (c) name expected rerun;
      ok = attempt.success && attempt.value == c.expected;
      actual = if attempt.success then attempt.value else "<evaluation failed>";
    };
  results = map run cases;
in
{
  passed = map (r: r.name) (b.filter (r: r.ok) results);
  failed = map (r: removeAttrs r [ "ok" ]) (b.filter (r: !r.ok) results);
}
