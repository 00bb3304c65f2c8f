# A static node has the name of a pool's generated member.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node worker-01 is declared twice: by pool 'workers' and in nodes";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.worker-01 = {
      pool = "workers";
      rack = "rack1";
      address = "10.0.1.9";
    };
  };
}
