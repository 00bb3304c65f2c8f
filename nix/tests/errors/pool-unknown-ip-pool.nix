# A pool names an ip pool that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers' uses unknown ip pool 'rack2-v6'";
  parity = false;
  declaration = lib.recursiveUpdate base { pools.workers.ipPool.rack2 = "rack2-v6"; };
}
