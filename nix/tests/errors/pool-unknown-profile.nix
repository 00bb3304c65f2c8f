# A pool names a profile that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers' uses unknown profile 'gpu'";
  parity = false;
  declaration = lib.recursiveUpdate base { pools.workers.profile = "gpu"; };
}
