# Generated members need a rack.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'gpus' has size 2 but no racks to place its nodes in";
  parity = true;
  declaration = lib.recursiveUpdate base {
    pools.gpus = {
      class = "worker";
      size = 2;
    };
  };
}
