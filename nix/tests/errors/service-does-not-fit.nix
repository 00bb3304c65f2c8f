# Five replicas, at most one per node, on a pool of four.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web' wants 5 replicas but at most 4 fit: 4 eligible nodes, at most 1 per node";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.replicas = 5; };
}
