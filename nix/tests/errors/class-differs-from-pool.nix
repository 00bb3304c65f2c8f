# A static node in a pool declares another class than the pool's.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 has class 'control' but its pool 'workers' has class 'worker'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.pool = "workers"; };
}
