# A pool places members in a rack that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers' uses unknown rack 'rack3'";
  parity = true;
  declaration = base // {
    pools.workers = base.pools.workers // {
      racks = [ "rack1" "rack2" "rack3" ];
      ipPool = "rack1-v4";
    };
  };
}
