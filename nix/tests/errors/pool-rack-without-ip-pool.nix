# A pool places members in a rack it names no ip pool for.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers' names no ip pool for its rack 'rack2'";
  parity = false;
  declaration = base // {
    pools.workers = base.pools.workers // {
      ipPool.rack1 = "rack1-v4";
    };
  };
}
