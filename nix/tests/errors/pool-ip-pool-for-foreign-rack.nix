# A pool names an ip pool for a rack it does not place members in.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers' names an ip pool for rack 'rack3', which is not one of its racks";
  parity = true;
  declaration = lib.recursiveUpdate base { pools.workers.ipPool.rack3 = "rack1-v4"; };
}
