# A maintenance window whose start is not HH:MM.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers': maintenance window 1 starts at '25:00', which is not HH:MM (UTC)";
  parity = true;
  declaration = lib.recursiveUpdate base { pools.workers.maintenance = [ { days = [ "sat" ]; start = "25:00"; minutes = 120; } ]; };
}
