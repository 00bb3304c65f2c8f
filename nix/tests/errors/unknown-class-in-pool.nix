# A pool names a class that is not declared; its generated nodes inherit it.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node worker-01 uses unknown class 'gpu'";
  parity = true;
  declaration = lib.recursiveUpdate base {
    pools.workers = {
      class = "gpu";
      profile = "base";
      diskLayout = "single";
    };
  };
}
