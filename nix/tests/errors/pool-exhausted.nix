# rack1-v4 has 9 free addresses; a pool of 20 puts 10 members in rack1 (worker-01, worker-03, ...).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers' is exhausted: ip pool 'rack1-v4' (10.0.1.0/28) has no free address for worker-19";
  parity = false;
  declaration = lib.recursiveUpdate base { pools.workers.size = 20; };
}
