# A rule overrides the class and profile with undeclared ones.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: enrollment rule 'workers' uses unknown class 'gpu'";
  parity = true;
  declaration = lib.recursiveUpdate base {
    enrollmentRules.workers.bind = {
      class = "gpu";
      profile = "gpu";
    };
  };
}
